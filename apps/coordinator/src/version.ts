// Confide's version lives in libs/queue (the coordinator, the CLI and the participant's heartbeat all report it).
export { confideVersion } from '@confide/queue';
