/*
 * Native reference for bench/paillier.bench.ts: the Paillier operations (g = n + 1) written directly against
 * OpenSSL's libcrypto BIGNUM API, single-threaded, to show what this machine can do without JavaScript.
 *
 *   gcc -O2 -o paillier_ref paillier_ref.c -lcrypto
 *   ./paillier_ref BITS MIN_MS < inputs
 *
 * stdin: four hex lines p, q, r, m from the Node side. The program first prints the ciphertext
 * c = (1 + m·n)·r^n mod n² it computes for them (so the bench can check it equals encryptFast's), then times
 * each operation on those values (key generation makes its own primes), one JSON object per line:
 *   {"op": "...", "iterations": N, "seconds": S, "opsPerSec": X}
 * It exits non-zero if its own decryption or randomness recovery disagrees with the inputs.
 */
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "paillier_ref: %s failed\n", what);
  exit(2);
}

#define CHECK(x) \
  do { \
    if (!(x)) die(#x); \
  } while (0)

static BIGNUM *read_hex(void) {
  char line[8192];
  BIGNUM *x = NULL;
  if (!fgets(line, sizeof line, stdin)) die("reading input");
  line[strcspn(line, "\r\n")] = 0;
  if (!BN_hex2bn(&x, line)) die("parsing hex input");
  return x;
}

/* Key material and scratch values shared by the timed operations. */
typedef struct {
  int bits;
  BIGNUM *p, *q, *n, *n2, *p2, *q2, *pm1, *qm1, *hp, *hq, *qinvp, *dp, *dq;
  BIGNUM *r, *m, *rn, *c, *c2, *t1, *t2, *t3, *out;
  BN_MONT_CTX *mont_n2, *mont_p2, *mont_q2, *mont_p, *mont_q;
  BN_CTX *ctx;
} state;

/* L_d(x) = (x − 1) / d */
static void lfunc(BIGNUM *out, const BIGNUM *x, const BIGNUM *d, BN_CTX *ctx) {
  CHECK(BN_sub(out, x, BN_value_one()));
  CHECK(BN_div(out, NULL, out, d, ctx));
}

/* Garner: out = xq + q·((xp − xq)·q⁻¹ mod p) */
static void crt(state *s, BIGNUM *out, const BIGNUM *xp, const BIGNUM *xq) {
  CHECK(BN_mod_sub(s->t3, xp, xq, s->p, s->ctx));
  CHECK(BN_mod_mul(s->t3, s->t3, s->qinvp, s->p, s->ctx));
  CHECK(BN_mul(s->t3, s->t3, s->q, s->ctx));
  CHECK(BN_add(out, s->t3, xq));
}

/* c = (1 + m·n)·rn mod n² */
static void online(state *s, BIGNUM *c, const BIGNUM *m, const BIGNUM *rn) {
  CHECK(BN_mul(s->t1, m, s->n, s->ctx));
  CHECK(BN_add_word(s->t1, 1));
  CHECK(BN_mod_mul(c, s->t1, rn, s->n2, s->ctx));
}

static void op_rn(state *s) { CHECK(BN_mod_exp_mont(s->rn, s->r, s->n, s->n2, s->ctx, s->mont_n2)); }
static void op_rn_consttime(state *s) { CHECK(BN_mod_exp_mont_consttime(s->rn, s->r, s->n, s->n2, s->ctx, s->mont_n2)); }
static void op_encrypt(state *s) {
  op_rn(s);
  online(s, s->c2, s->m, s->rn);
}
static void op_online(state *s) { online(s, s->c2, s->m, s->rn); }
static void op_add(state *s) { CHECK(BN_mod_mul(s->c2, s->c, s->c, s->n2, s->ctx)); }

static void op_decrypt(state *s) {
  CHECK(BN_nnmod(s->t1, s->c, s->p2, s->ctx));
  CHECK(BN_mod_exp_mont(s->t1, s->t1, s->pm1, s->p2, s->ctx, s->mont_p2));
  lfunc(s->t1, s->t1, s->p, s->ctx);
  CHECK(BN_mod_mul(s->t1, s->t1, s->hp, s->p, s->ctx));
  CHECK(BN_nnmod(s->t2, s->c, s->q2, s->ctx));
  CHECK(BN_mod_exp_mont(s->t2, s->t2, s->qm1, s->q2, s->ctx, s->mont_q2));
  lfunc(s->t2, s->t2, s->q, s->ctx);
  CHECK(BN_mod_mul(s->t2, s->t2, s->hq, s->q, s->ctx));
  crt(s, s->out, s->t1, s->t2);
}

static void op_recover(state *s) {
  CHECK(BN_nnmod(s->t1, s->c, s->p, s->ctx));
  CHECK(BN_mod_exp_mont(s->t1, s->t1, s->dp, s->p, s->ctx, s->mont_p));
  CHECK(BN_nnmod(s->t2, s->c, s->q, s->ctx));
  CHECK(BN_mod_exp_mont(s->t2, s->t2, s->dq, s->q, s->ctx, s->mont_q));
  crt(s, s->out, s->t1, s->t2);
}

static void op_verify(state *s) {
  CHECK(BN_mod_exp_mont(s->t2, s->r, s->n, s->n2, s->ctx, s->mont_n2));
  online(s, s->c2, s->m, s->t2);
  if (BN_cmp(s->c2, s->c) != 0) die("verify");
}

static void op_keygen(state *s) {
  BIGNUM *p = BN_new(), *q = BN_new(), *n = BN_new();
  CHECK(p && q && n);
  do {
    CHECK(BN_generate_prime_ex(p, s->bits / 2, 0, NULL, NULL, NULL));
    CHECK(BN_generate_prime_ex(q, s->bits / 2, 0, NULL, NULL, NULL));
    CHECK(BN_mul(n, p, q, s->ctx));
  } while (BN_cmp(p, q) == 0 || BN_num_bits(n) != s->bits);
  BN_free(p);
  BN_free(q);
  BN_free(n);
}

/* Runs op at least min_iter times and for at least min_ms (after one untimed call); prints its rate. */
static void timed(state *s, const char *name, void (*op)(state *), int min_iter, double min_ms) {
  op(s);
  int it = 0;
  double start = now(), elapsed = 0;
  do {
    op(s);
    it++;
    elapsed = now() - start;
  } while (it < min_iter || elapsed * 1000 < min_ms);
  printf("{\"op\":\"%s\",\"iterations\":%d,\"seconds\":%.6f,\"opsPerSec\":%.6f}\n", name, it, elapsed, it / elapsed);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s BITS MIN_MS < p q r m (hex lines)\n", argv[0]);
    return 2;
  }
  state st;
  state *s = &st;
  memset(s, 0, sizeof st);
  s->bits = atoi(argv[1]);
  double min_ms = atof(argv[2]);
  CHECK(s->ctx = BN_CTX_new());
  s->p = read_hex();
  s->q = read_hex();
  s->r = read_hex();
  s->m = read_hex();
  BIGNUM **fresh[] = {&s->n, &s->n2, &s->p2, &s->q2, &s->pm1, &s->qm1, &s->hp, &s->hq, &s->qinvp, &s->dp, &s->dq,
                      &s->rn, &s->c, &s->c2, &s->t1, &s->t2, &s->t3, &s->out};
  for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) CHECK(*fresh[i] = BN_new());
  CHECK(BN_mul(s->n, s->p, s->q, s->ctx));
  CHECK(BN_sqr(s->n2, s->n, s->ctx));
  CHECK(BN_sqr(s->p2, s->p, s->ctx));
  CHECK(BN_sqr(s->q2, s->q, s->ctx));
  CHECK(BN_sub(s->pm1, s->p, BN_value_one()));
  CHECK(BN_sub(s->qm1, s->q, BN_value_one()));
  /* h_p = L_p((1 + n)^(p−1) mod p²)⁻¹ mod p, and the same for q */
  CHECK(BN_add(s->t1, s->n, BN_value_one()));
  CHECK(BN_mod_exp(s->t2, s->t1, s->pm1, s->p2, s->ctx));
  lfunc(s->t2, s->t2, s->p, s->ctx);
  CHECK(BN_mod_inverse(s->hp, s->t2, s->p, s->ctx));
  CHECK(BN_mod_exp(s->t2, s->t1, s->qm1, s->q2, s->ctx));
  lfunc(s->t2, s->t2, s->q, s->ctx);
  CHECK(BN_mod_inverse(s->hq, s->t2, s->q, s->ctx));
  CHECK(BN_mod_inverse(s->qinvp, s->q, s->p, s->ctx));
  CHECK(BN_mod_inverse(s->dp, s->n, s->pm1, s->ctx));
  CHECK(BN_mod_inverse(s->dq, s->n, s->qm1, s->ctx));
  CHECK(s->mont_n2 = BN_MONT_CTX_new());
  CHECK(BN_MONT_CTX_set(s->mont_n2, s->n2, s->ctx));
  CHECK(s->mont_p2 = BN_MONT_CTX_new());
  CHECK(BN_MONT_CTX_set(s->mont_p2, s->p2, s->ctx));
  CHECK(s->mont_q2 = BN_MONT_CTX_new());
  CHECK(BN_MONT_CTX_set(s->mont_q2, s->q2, s->ctx));
  CHECK(s->mont_p = BN_MONT_CTX_new());
  CHECK(BN_MONT_CTX_set(s->mont_p, s->p, s->ctx));
  CHECK(s->mont_q = BN_MONT_CTX_new());
  CHECK(BN_MONT_CTX_set(s->mont_q, s->q, s->ctx));

  /* The ciphertext of the inputs, checked by the bench against encryptFast, then decrypted and opened here. */
  op_rn(s);
  online(s, s->c, s->m, s->rn);
  char *hex = BN_bn2hex(s->c);
  printf("{\"openssl\":\"%s\",\"ciphertext\":\"%s\"}\n", OpenSSL_version(OPENSSL_VERSION), hex);
  OPENSSL_free(hex);
  op_decrypt(s);
  if (BN_cmp(s->out, s->m) != 0) die("self-check: CRT decryption");
  op_recover(s);
  if (BN_cmp(s->out, s->r) != 0) die("self-check: randomness recovery");

  timed(s, "rn", op_rn, 5, min_ms);
  timed(s, "rn_consttime", op_rn_consttime, 5, min_ms);
  timed(s, "encrypt", op_encrypt, 5, min_ms);
  timed(s, "online", op_online, 1000, min_ms);
  timed(s, "add", op_add, 1000, min_ms);
  timed(s, "decrypt", op_decrypt, 5, min_ms);
  timed(s, "recover", op_recover, 5, min_ms);
  timed(s, "verify", op_verify, 5, min_ms);
  timed(s, "keygen", op_keygen, 3, min_ms * 2);
  return 0;
}
