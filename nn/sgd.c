/*
 * sgd.c - the optimizer and the learning-rate schedule, both as PyTorch
 * defines them so a recipe means the same thing here and there.
 */
#include <math.h>

#include "nn/nn.h"

/* torch.optim.SGD with dampening 0: the momentum buffer starts at zero, which
 * gives PyTorch's first-step buf = g exactly. */
void nn_sgd_step(const nn_sgd *o, float lr, size_t len, float *p, const float *g, float *v)
{
	float mu = o->momentum, wd = o->weight_decay;

#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < len; i++) {
		float d = g[i] + wd * p[i];
		if (mu != 0.0f) {
			v[i] = mu * v[i] + d;
			d = o->nesterov ? d + mu * v[i] : v[i];
		}
		p[i] -= lr * d;
	}
}

/* CosineAnnealingLR(T_max = total - warmup, eta_min = 0) after a linear warm-up
 * that reaches base at step warmup. */
float nn_lr_at(enum nn_schedule s, float base, int t, int total, int warmup)
{
	if (t < warmup)
		return base * (float)(t + 1) / (float)warmup;
	if (s == NN_SCHEDULE_CONSTANT || total <= warmup)
		return base;
	double frac = (double)(t - warmup) / (double)(total - warmup);
	return (float)(base * 0.5 * (1.0 + cos(M_PI * frac)));
}
