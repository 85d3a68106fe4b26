/*
 * pass.c - running a network: the forward pass, the backward pass, and one
 * training step.
 */
#include <math.h>
#include <string.h>

#include "nn/net_internal.h"

static const float *out_of(const nn_net *net, int i)
{
	if (i == 0)
		return net->input;
	if (i == net->graft_last && net->graft_feats)
		return net->graft_feats;
	return net->node[i].y;
}

static void forward_node(nn_net *net, struct nn__node *d, int n, int train)
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
	for (int i = 1; i < net->n; i++) {
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

static void backward_node(nn_net *net, struct nn__node *d, int n)
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
	memset(net->grads, 0, net->nparams * sizeof(float));
	for (int i = 1; i < net->n - 1; i++)
		if (net->node[i].needs_grad)
			memset(net->node[i].dy, 0, nn__node_size(&net->node[i]) * n * sizeof(float));
	memcpy(last->dy, dout, nn__node_size(last) * n * sizeof(float));
	for (int i = net->n - 1; i >= 1; i--)
		if (net->node[i].needs_grad)
			backward_node(net, &net->node[i], n);
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
