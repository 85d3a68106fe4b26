/*
 * test_stats.c - the statistics of paired comparisons against values worked
 * out by hand (and, for the t quantiles, against mpmath's exact inverse of
 * the incomplete beta function, printed to 9 digits), and their edge cases.
 */
#include <math.h>

#include <criterion/criterion.h>

#include "search/search.h"

TestSuite(stats, .timeout = 30);

#define expect_near(got, want, tol) \
	cr_expect(fabs((got) - (want)) <= (tol), "%s = %.9f, expected %.9f", #got, \
	          (double)(got), (double)(want))

Test(stats, mean)
{
	const double x[] = { 1, 2, 3, 4 };

	expect_near(search_mean(x, 4), 2.5, 1e-15);
	expect_near(search_mean(x, 1), 1.0, 0);
	cr_expect(isnan(search_mean(x, 0)), "mean of nothing is not NaN");
}

Test(stats, t_quantiles)
{
	/* mpmath: findroot(1 - betainc(v/2, 1/2, 0, v/(v+t^2))/2 = 0.975). */
	static const struct { int dof; double t; } exact[] = {
		{ 1, 12.70620474 }, { 2, 4.30265273 }, { 4, 2.776445105 },
		{ 10, 2.228138852 }, { 29, 2.045229642 }, { 30, 2.042272456 },
		{ 31, 2.039513446 }, { 40, 2.02107539 }, { 60, 2.000297822 },
		{ 120, 1.979930405 }, { 1000, 1.962339081 },
	};
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		cr_expect(fabs(search_t975(exact[i].dof) - exact[i].t) < 1e-6,
		          "t(0.975, %d) = %.9f, expected %.9f", exact[i].dof,
		          search_t975(exact[i].dof), exact[i].t);
	expect_near(search_t975(1000000000), 1.959963985, 1e-8);
	/* Decreasing in dof, across the seam between table and expansion. */
	for (int v = 1; v < 200; v++)
		cr_expect_gt(search_t975(v), search_t975(v + 1), "t(%d) <= t(%d)", v, v + 1);
	cr_expect(isnan(search_t975(0)) && isnan(search_t975(-3)));
}

Test(stats, paired_ci_of_one_to_five)
{
	/* diffs 1..5: mean 3, sd sqrt(2.5) = 1.5811388, se = sd / sqrt(5) =
	 * 0.7071068, t(4) = 2.776445 -> half width 1.963243. */
	const double a[] = { 2, 4, 6, 8, 10 }, b[] = { 1, 2, 3, 4, 5 };
	search_paired p;

	search_paired_ci(a, b, 5, &p);
	cr_expect_eq(p.n, 5);
	expect_near(p.mean_diff, 3.0, 1e-12);
	expect_near(p.sd_diff, 1.5811388, 1e-7);
	expect_near(p.ci_lo, 1.036757, 1e-6);
	expect_near(p.ci_hi, 4.963243, 1e-6);

	/* Swapping the arms negates the interval. */
	search_paired_ci(b, a, 5, &p);
	expect_near(p.mean_diff, -3.0, 1e-12);
	expect_near(p.ci_lo, -4.963243, 1e-6);
	expect_near(p.ci_hi, -1.036757, 1e-6);
}

Test(stats, paired_ci_of_two_pairs)
{
	/* diffs -1, -2: mean -1.5, sd 0.7071068, se 0.5, t(1) = 12.706205. */
	const double a[] = { 1, 2 }, b[] = { 2, 4 };
	search_paired p;

	search_paired_ci(a, b, 2, &p);
	expect_near(p.mean_diff, -1.5, 1e-12);
	expect_near(p.sd_diff, 0.70710678, 1e-8);
	expect_near(p.ci_lo, -1.5 - 6.3531025, 1e-6);
	expect_near(p.ci_hi, -1.5 + 6.3531025, 1e-6);
}

Test(stats, paired_ci_uses_the_pairing)
{
	/* Large spread between candidates, a constant 0.04 gain within each pair:
	 * the paired sd is 0, so the interval is the point. */
	const double a[] = { 0.84, 0.74, 0.94, 0.64 }, b[] = { 0.80, 0.70, 0.90, 0.60 };
	search_paired p;

	search_paired_ci(a, b, 4, &p);
	expect_near(p.mean_diff, 0.04, 1e-12);
	expect_near(p.sd_diff, 0.0, 1e-12);
	expect_near(p.ci_lo, 0.04, 1e-12);
	expect_near(p.ci_hi, 0.04, 1e-12);
}

Test(stats, paired_ci_of_one_and_none)
{
	const double a[] = { 0.9 }, b[] = { 0.8 };
	search_paired p;

	/* One pair: a mean, but no spread and no interval. */
	search_paired_ci(a, b, 1, &p);
	cr_expect_eq(p.n, 1);
	expect_near(p.mean_diff, 0.1, 1e-12);
	cr_expect(isnan(p.sd_diff) && isnan(p.ci_lo) && isnan(p.ci_hi));

	search_paired_ci(a, b, 0, &p);
	cr_expect_eq(p.n, 0);
	cr_expect(isnan(p.mean_diff) && isnan(p.sd_diff) && isnan(p.ci_lo) &&
	          isnan(p.ci_hi));
}

Test(stats, kendall_tau_without_ties)
{
	const double x[] = { 1, 2, 3, 4, 5 }, y[] = { 10, 20, 30, 40, 50 };
	const double rev[] = { 5, 4, 3, 2, 1 };
	/* One swapped neighbour pair: 9 concordant, 1 discordant -> 0.8. */
	const double one_swap[] = { 2, 1, 3, 4, 5 };

	expect_near(search_kendall_tau(x, y, 5), 1.0, 1e-15);
	expect_near(search_kendall_tau(x, rev, 5), -1.0, 1e-15);
	expect_near(search_kendall_tau(x, one_swap, 5), 0.8, 1e-15);
	expect_near(search_kendall_tau(one_swap, x, 5), 0.8, 1e-15);
}

Test(stats, kendall_tau_b_with_ties)
{
	/* scipy.stats.kendalltau's documented example: tau = -0.47140452079103173.
	 * By hand: of the 10 pairs, 2 concordant, 6 discordant, 1 tied in x only
	 * ((2,4) vs (2,0)), 1 tied in both ((12,1) twice), so
	 * tau_b = (2 - 6) / sqrt((8 + 1) * (8 + 0)) = -4 / sqrt(72). */
	const double x1[] = { 12, 2, 1, 12, 2 }, x2[] = { 1, 4, 7, 1, 0 };
	expect_near(search_kendall_tau(x1, x2, 5), -0.47140452079103173, 1e-12);
	expect_near(search_kendall_tau(x2, x1, 5), -0.47140452079103173, 1e-12);

	/* 5 concordant, 1 tied in x only: 5 / sqrt(6 * 5) = 0.9128709. tau-a
	 * would give 5/6 = 0.833, so this catches a missing tie correction. */
	const double x[] = { 1, 2, 2, 3 }, y[] = { 1, 3, 2, 4 };
	expect_near(search_kendall_tau(x, y, 4), 0.91287092917527690, 1e-12);
	expect_near(search_kendall_tau(y, x, 4), 0.91287092917527690, 1e-12);

	/* Ties on both sides in different pairs: x = {1,1,2,2}, y = {1,2,2,3}:
	 * (0,1) x-tie, (2,3) x-tie, (1,2) y-tie, 3 concordant ->
	 * 3 / sqrt((3 + 2) * (3 + 1)) = 0.6708204. */
	const double u[] = { 1, 1, 2, 2 }, v[] = { 1, 2, 2, 3 };
	expect_near(search_kendall_tau(u, v, 4), 0.67082039324993690, 1e-12);
}

Test(stats, kendall_tau_edge_cases)
{
	const double x[] = { 1, 2, 3 }, c[] = { 7, 7, 7 };

	/* Fewer than two items, or a constant side: tau is undefined (NaN), as
	 * scipy has it. */
	cr_expect(isnan(search_kendall_tau(x, x, 1)));
	cr_expect(isnan(search_kendall_tau(x, x, 0)));
	cr_expect(isnan(search_kendall_tau(x, c, 3)));
	cr_expect(isnan(search_kendall_tau(c, x, 3)));
	expect_near(search_kendall_tau(x, x, 2), 1.0, 0);
}
