/*
 * pass.c - running a network: the forward pass, the backward pass, and one
 * training step.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "nn/dnnl_internal.h"
#include "nn/net_internal.h"

_Thread_local double *nn__prof;
_Thread_local int nn__prof_convs_only;

double nn__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* What node d's forward or backward counts as in a profile. */
static enum nn_prof_part prof_part(const struct nn__node *d, int backward)
{
	switch (d->kind) {
	case NODE_CONV: return backward ? NN_PROF_CONV_BWD_DATA : NN_PROF_CONV_FWD;
	case NODE_BN: return backward ? NN_PROF_BN_BWD : NN_PROF_BN_FWD;
	case NODE_RELU: return NN_PROF_RELU;
	case NODE_MAXPOOL: return NN_PROF_POOL;
	case NODE_ADD: return NN_PROF_ADD;
	default: return NN_PROF_HEAD;
	}
}

static const float *out_of(const nn_net *net, int i)
{
	if (i == 0)
		return net->input;
	if (i == net->graft_last && net->graft_feats)
		return net->graft_feats;
	return net->node[i].y;
}

static void do_forward(nn_net *net, struct nn__node *d, int n, int train);

static void forward_node(nn_net *net, struct nn__node *d, int n, int train)
{
	if (nn__prof) {
		double t0 = nn__now();
		do_forward(net, d, n, train);
		nn__prof[prof_part(d, 0)] += nn__now() - t0;
	} else {
		do_forward(net, d, n, train);
	}
}

static void do_forward(nn_net *net, struct nn__node *d, int n, int train)
{
	const struct nn__node *x = &net->node[d->in];
	const float *xin = out_of(net, d->in);
	size_t len = nn__node_size(d) * n;

	switch (d->kind) {
	case NODE_CONV:
		nn_conv_forward(&d->conv, n, xin, d->wt, d->y, net->ws);
		break;
	case NODE_BN:
		if (train && !d->frozen)
			nn_bn_forward_train(n, d->c, d->h * d->w, xin, d->wt, d->bs, d->rmean,
			                    d->rvar, d->smean, d->sinvstd, d->relu, d->y);
		else
			nn_bn_forward_eval(n, d->c, d->h * d->w, xin, d->wt, d->bs, d->rmean,
			                   d->rvar, d->relu, d->y);
		break;
	case NODE_RELU:
		nn_relu_forward(len, xin, d->y);
		break;
	case NODE_ADD:
		nn_add_forward(len, xin, out_of(net, d->in2), d->relu, d->y);
		break;
	case NODE_MAXPOOL:
		nn_maxpool_forward(n, x->c, x->h, x->w, xin, d->y);
		break;
	case NODE_GAP:
		nn_gap_forward(n, x->c, x->h * x->w, xin, d->y);
		break;
	case NODE_LINEAR:
		nn_linear_forward(n, (int)(d->nw / d->nb), d->c, xin, d->wt, d->bs, d->y);
		break;
	case NODE_INPUT:
		break;
	}
}

void nn__forward_node(nn_net *net, int i, int n)
{
	forward_node(net, &net->node[i], n, 0);
}

const float *nn_net_forward(nn_net *net, const float *x, int n, int train)
{
	if (!net->finalized || n < 1 || n > net->max_batch)
		return NULL;
	net->input = x;
	net->batch = n;
	/* On oneDNN, the layers up to the pool run as one plan, blocked. */
	net->plan = nn__plan_get(net, n, train);
	int first = 1;
	if (net->plan) {
		if (nn__plan_forward(net->plan, net))
			return NULL;
		first = nn__plan_last(net->plan) + 1;
	}
	for (int i = first; i < net->n; i++) {
		/* A cached graft output makes the graft's own layers unnecessary. */
		if (net->graft_feats && i >= net->graft_first && i <= net->graft_last)
			continue;
		forward_node(net, &net->node[i], n, train);
	}
	return net->node[net->n - 1].y;
}

/* The gradient buffer of node i if a gradient must flow into it, else NULL. */
static float *grad_of(nn_net *net, int i)
{
	return i >= 0 && net->node[i].needs_grad ? net->node[i].dy : NULL;
}

static void do_backward(nn_net *net, struct nn__node *d, int n);

static void backward_node(nn_net *net, struct nn__node *d, int n)
{
	if (nn__prof) {
		double t0 = nn__now();
		do_backward(net, d, n);
		nn__prof[prof_part(d, 1)] += nn__now() - t0;
	} else {
		do_backward(net, d, n);
	}
}

static void do_backward(nn_net *net, struct nn__node *d, int n)
{
	const struct nn__node *x = &net->node[d->in];
	const float *xin = out_of(net, d->in);
	float *dx = grad_of(net, d->in);
	size_t len = nn__node_size(d) * n;
	int train = !d->frozen;

	switch (d->kind) {
	case NODE_CONV:
		nn_conv_backward(&d->conv, n, xin, d->wt, d->dy, dx, train ? d->dwt : NULL,
		                 net->ws);
		break;
	case NODE_BN:
		if (train) {
			nn_bn_backward(n, d->c, d->h * d->w, xin, d->y, d->dy, d->wt, d->smean,
			               d->sinvstd, d->relu, dx, d->dwt, d->dbs);
		} else if (dx) {
			/* A frozen BN is a fixed affine map (+ ReLU): its input gradient
			 * is dy * gamma / sqrt(running_var + eps), masked. */
			int hw = d->h * d->w;
			for (int b = 0; b < n; b++)
				for (int c = 0; c < d->c; c++) {
					float s = d->wt[c] / sqrtf(d->rvar[c] + NN_BN_EPS);
					size_t off = ((size_t)b * d->c + c) * hw;
					for (int i = 0; i < hw; i++)
						if (!d->relu || d->y[off + i] > 0.0f)
							dx[off + i] += s * d->dy[off + i];
				}
		}
		break;
	case NODE_RELU:
		if (dx)
			nn_relu_backward(len, d->y, d->dy, dx);
		break;
	case NODE_ADD:
		nn_add_backward(len, d->y, d->dy, d->relu, dx, grad_of(net, d->in2));
		break;
	case NODE_MAXPOOL:
		if (dx)
			nn_maxpool_backward(n, x->c, x->h, x->w, xin, d->y, d->dy, dx);
		break;
	case NODE_GAP:
		if (dx)
			nn_gap_backward(n, x->c, x->h * x->w, d->dy, dx);
		break;
	case NODE_LINEAR:
		nn_linear_backward(n, (int)(d->nw / d->nb), d->c, xin, d->wt, d->dy, dx,
		                   train ? d->dwt : NULL, train ? d->dbs : NULL);
		break;
	case NODE_INPUT:
		break;
	}
}

void nn_net_backward(nn_net *net, const float *dout)
{
	int n = net->batch;
	struct nn__node *last = &net->node[net->n - 1];

	if (!last->needs_grad)
		return;
	/* The plan of the last forward pass, if it was a training one. */
	struct nn__plan *plan = net->plan && nn__plan_training(net->plan) ? net->plan : NULL;
	int first = plan ? nn__plan_last(plan) + 1 : 1;
	memset(net->grads, 0, net->nparams * sizeof(float));
	/* Plain gradients accumulate: zero those the plain nodes add to
	 * (with a plan, the plain nodes' and those of the nodes they read). */
	for (int i = 1; i < net->n - 1; i++) {
		const struct nn__node *d = &net->node[i];
		if (d->needs_grad && (i >= first || nn__readers(net, i, first)))
			memset(d->dy, 0, nn__node_size(d) * n * sizeof(float));
	}
	memcpy(last->dy, dout, nn__node_size(last) * n * sizeof(float));
	for (int i = net->n - 1; i >= first; i--)
		if (net->node[i].needs_grad)
			backward_node(net, &net->node[i], n);
	if (plan)
		nn__plan_backward(plan, net);
}

void nn_net_set_graft_features(nn_net *net, const float *feats)
{
	net->graft_feats = net->graft_last ? feats : NULL;
}

double nn_net_train_step(nn_net *net, const float *x, const int *y, int n,
                         const nn_sgd *opt, float lr)
{
	const float *logits = nn_net_forward(net, x, n, 1);
	int k = net->node[net->n - 1].c;
	double loss = nn_softmax_xent(n, k, logits, y, net->dlogits);

	nn_net_backward(net, net->dlogits);
	nn_sgd_step(opt, lr, net->nparams, net->params, net->grads, net->moments);
	return loss;
}

/* ---- profiling ---------------------------------------------------------------- */

const char *nn_prof_part_name(enum nn_prof_part part)
{
	static const char *const names[NN_PROF_PARTS] = {
		[NN_PROF_CONV_FWD] = "conv forward",
		[NN_PROF_CONV_BWD_DATA] = "conv backward data",
		[NN_PROF_CONV_BWD_WEIGHTS] = "conv backward weights",
		[NN_PROF_BN_FWD] = "batch norm (+ReLU) forward",
		[NN_PROF_BN_BWD] = "batch norm (+ReLU) backward",
		[NN_PROF_RELU] = "ReLU",
		[NN_PROF_POOL] = "max-pool",
		[NN_PROF_ADD] = "residual add",
		[NN_PROF_REORDER] = "layout reorders",
		[NN_PROF_GRAD_SUM] = "gradient sums",
		[NN_PROF_HEAD] = "GAP + linear + loss",
		[NN_PROF_SGD] = "SGD",
	};
	return part >= 0 && part < NN_PROF_PARTS ? names[part] : "?";
}

double nn_net_setup_seconds(const nn_net *net)
{
	return net->plan_seconds;
}

int nn_net_planned(const nn_net *net)
{
	return net->plan != NULL;
}

int nn_net_reference_kernels(const nn_net *net)
{
	return net->plan ? nn__plan_refs(net->plan) : 0;
}

int nn_net_profile_step(nn_net *net, const float *x, const int *y, int n,
                        const nn_sgd *opt, float lr, int convs_only, double *seconds)
{
	if (!net->finalized || n < 1 || n > net->max_batch)
		return GRAFT_EINVAL;
	nn__prof = seconds;
	nn__prof_convs_only = convs_only;
	int rc = 0;
	if (convs_only) {
		net->input = x;
		net->batch = n;
		struct nn__plan *p = nn__plan_get(net, n, 1);
		rc = p && !nn__plan_forward(p, net) && !nn__plan_backward(p, net) ? 0 : GRAFT_EINVAL;
	} else {
		const float *logits = nn_net_forward(net, x, n, 1);
		double t0 = nn__now();
		nn_softmax_xent(n, net->node[net->n - 1].c, logits, y, net->dlogits);
		seconds[NN_PROF_HEAD] += nn__now() - t0;
		nn_net_backward(net, net->dlogits);
		t0 = nn__now();
		nn_sgd_step(opt, lr, net->nparams, net->params, net->grads, net->moments);
		seconds[NN_PROF_SGD] += nn__now() - t0;
	}
	nn__prof = NULL;
	nn__prof_convs_only = 0;
	return rc;
}
