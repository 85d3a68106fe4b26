/*
 * stats.c - the statistics an ablation uses to compare treatments trained on
 * the same candidates: a paired confidence interval and Kendall's rank
 * correlation.
 *
 * Student's t quantile comes from a table rather than an inverse of the
 * incomplete beta function: an ablation only ever needs the 95% two-sided
 * value, and a table checked against an exact computation (mpmath's betainc,
 * to 6 decimals) is easier to trust than an iterative inverse.  Beyond the
 * table the Cornish-Fisher expansion is exact to better than 1e-7.
 */
#include <math.h>

#include "search/search.h"

/* t(0.975, dof) for dof = 1..30. */
static const double t975_table[30] = {
	12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624,
	2.306004, 2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787,
	2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963, 2.079614,
	2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407,
	2.045230, 2.042272,
};

double search_t975(int dof)
{
	if (dof < 1)
		return NAN;
	if (dof <= 30)
		return t975_table[dof - 1];
	/* Abramowitz & Stegun 26.7.5, four terms in 1/dof around the normal
	 * quantile. */
	const double z = 1.959963984540054, v = dof;
	double z2 = z * z, z3 = z2 * z, z5 = z3 * z2, z7 = z5 * z2, z9 = z7 * z2;
	double g1 = (z3 + z) / 4;
	double g2 = (5 * z5 + 16 * z3 + 3 * z) / 96;
	double g3 = (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / 384;
	double g4 = (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / 92160;
	return z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v);
}

double search_mean(const double *x, int n)
{
	double s = 0;

	if (n <= 0)
		return NAN;
	for (int i = 0; i < n; i++)
		s += x[i];
	return s / n;
}

void search_paired_ci(const double *a, const double *b, int n, search_paired *out)
{
	double mean = 0, ss = 0;

	out->n = n;
	out->mean_diff = out->sd_diff = out->ci_lo = out->ci_hi = NAN;
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++)
		mean += a[i] - b[i];
	mean /= n;
	out->mean_diff = mean;
	if (n < 2)
		return;
	/* Two passes: the sum of squared deviations, not E[d^2] - E[d]^2, which
	 * cancels badly when the differences are small beside their mean. */
	for (int i = 0; i < n; i++) {
		double d = a[i] - b[i] - mean;
		ss += d * d;
	}
	out->sd_diff = sqrt(ss / (n - 1));
	double half = search_t975(n - 1) * out->sd_diff / sqrt((double)n);
	out->ci_lo = mean - half;
	out->ci_hi = mean + half;
}

/* -1, 0 or 1 as a is below, equal to or above b. */
static int sign(double a, double b)
{
	return (a > b) - (a < b);
}

double search_kendall_tau(const double *x, const double *y, int n)
{
	int64_t c = 0, d = 0, tx = 0, ty = 0;

	if (n < 2)
		return NAN;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			int s = sign(x[i], x[j]) * sign(y[i], y[j]);
			if (s > 0)
				c++;
			else if (s < 0)
				d++;
			else if (x[i] == x[j] && y[i] != y[j])
				tx++;
			else if (y[i] == y[j] && x[i] != x[j])
				ty++;
		}
	double den = sqrt((double)(c + d + tx) * (double)(c + d + ty));
	return den > 0 ? (double)(c - d) / den : NAN;
}
