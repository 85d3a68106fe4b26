/*
 * rng.c - a small, fast, seedable generator (xoshiro256**), so that a seeded
 * run gives the same numbers on every machine and libc.
 */
#include <math.h>

#include "nn/nn.h"

/* splitmix64 also spreads a 64-bit seed over the four words of state, as
 * the xoshiro authors recommend. */
uint64_t nn_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = nn_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t nn_rng_next(nn_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double nn_rng_uniform(nn_rng *r)
{
	return (double)(nn_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Box-Muller; the second value is dropped to keep the state a plain struct. */
double nn_rng_normal(nn_rng *r)
{
	double u = 1.0 - nn_rng_uniform(r); /* (0, 1], safe for log */
	double v = nn_rng_uniform(r);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Lemire's multiply-shift with rejection: unbiased for every n. */
uint32_t nn_rng_below(nn_rng *r, uint32_t n)
{
	uint64_t m = (uint64_t)(uint32_t)(nn_rng_next(r) >> 32) * n;
	uint32_t low = (uint32_t)m;
	if (low < n) {
		uint32_t threshold = -n % n;
		while (low < threshold) {
			m = (uint64_t)(uint32_t)(nn_rng_next(r) >> 32) * n;
			low = (uint32_t)m;
		}
	}
	return (uint32_t)(m >> 32);
}
