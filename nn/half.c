/*
 * half.c - IEEE half precision (binary16) for the graft feature cache: the
 * frozen graft's outputs are stored at half the bytes of float and widened
 * a batch at a time.  F16C's conversions where the CPU has them (every
 * AVX2 machine), else the same rounding (to nearest, ties to even) by hand.
 */
#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "nn/nn.h"

static nn_half to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
	if (e == 0xff) /* inf, nan (kept a nan) */
		return (nn_half)(sign | 0x7c00u | (m ? 0x200u | (m >> 13) : 0));
	int exp = (int)e - 127 + 15;
	if (exp >= 0x1f)
		return (nn_half)(sign | 0x7c00u);
	if (exp <= 0) { /* subnormal or zero */
		if (exp < -10)
			return (nn_half)sign;
		m |= 0x800000u;
		int shift = 14 - exp;
		uint32_t h = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rest > half || (rest == half && (h & 1)))
			h++;
		return (nn_half)(sign | h);
	}
	uint32_t h = ((uint32_t)exp << 10) | (m >> 13), rest = m & 0x1fffu;
	if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
		h++; /* may carry into the exponent, which is right */
	return (nn_half)(sign | h);
}

static float from_half(nn_half h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
	if (e == 0x1f) {
		x = sign | 0x7f800000u | (m << 13);
	} else if (e) {
		x = sign | ((e - 15 + 127) << 23) | (m << 13);
	} else if (m) { /* subnormal: normalize */
		int shift = 0;
		while (!(m & 0x400u)) {
			m <<= 1;
			shift++;
		}
		x = sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | ((m & 0x3ffu) << 13);
	} else {
		x = sign;
	}
	float f;
	memcpy(&f, &x, sizeof f);
	return f;
}

void nn_half_from_floats(const float *in, nn_half *out, size_t n)
{
	size_t i = 0;
#ifdef __F16C__
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(out + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
#endif
	for (; i < n; i++)
		out[i] = to_half(in[i]);
}

void nn_half_to_floats(const nn_half *in, float *out, size_t n)
{
	size_t i = 0;
#ifdef __F16C__
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
#endif
	for (; i < n; i++)
		out[i] = from_half(in[i]);
}
