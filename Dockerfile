# One image for every Confide role: coordinator, participant worker, CLI.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
COPY examples ./examples
COPY docker ./docker
# The mount points of docker-compose.yml's volumes: a new volume takes its owner from the image's directory, so the
# ones this image writes as node are node's. /secrets is written by the root one-shot `secrets` (docker/secrets.sh).
RUN ln -s /app/dist/apps/cli/apps/cli/src/main.js /usr/local/bin/confide && chmod +x /app/dist/apps/cli/apps/cli/src/main.js \
 && mkdir -p /participant /data /invitation /invitations/hospital-1 /invitations/hospital-2 /invitations/hospital-3 /researcher \
 && chown -R node:node /participant /data /invitation /invitations /researcher \
 && mkdir -m 0711 /secrets
USER node
ENTRYPOINT ["confide"]
