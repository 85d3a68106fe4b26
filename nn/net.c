/*
 * net.c - a network as a list of nodes: building, allocating, forward and
 * backward passes, and one training step.
 *
 * Memory is laid out once, in nn_net_finalize: trainable parameters in one
 * block (with their gradients and momentum in blocks of the same length, so an
 * SGD step is one loop), frozen parameters and running statistics in another,
 * and one activation and one gradient buffer per node sized for the largest
 * batch.  Nothing is allocated per step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dnnl_internal.h"
#include "nn/net_internal.h"

nn_net *nn_net_new(int c, int h, int w)
{
	nn_net *net = calloc(1, sizeof(*net));
	if (!net)
		return NULL;
	net->cap = 32;
	net->node = calloc(net->cap, sizeof(*net->node));
	if (!net->node) {
		free(net);
		return NULL;
	}
	net->n = 1;
	net->node[0] = (struct nn__node){ .kind = NODE_INPUT, .in = -1, .in2 = -1,
	                                  .c = c, .h = h, .w = w };
	return net;
}

void nn_net_free(nn_net *net)
{
	if (!net)
		return;
	nn__plans_free(net);
	free(net->node);
	free(net->params);
	free(net->grads);
	free(net->moments);
	free(net->fixed);
	free(net->act);
	free(net->ws);
	free(net->dlogits);
	free(net);
}

/* Appends a node of the given kind reading in (and in2), with its output
 * shape; returns its id or a negative code. */
static int push(nn_net *net, enum nn__kind kind, int in, int in2, int c, int h, int w,
                const char *name)
{
	if (net->finalized || in < 0 || in >= net->n || in2 >= net->n || c < 1 ||
	    h < 1 || w < 1 || (name && strlen(name) >= sizeof(net->node->name)))
		return GRAFT_EINVAL;
	if (net->n == net->cap) {
		struct nn__node *p = realloc(net->node, 2 * net->cap * sizeof(*p));
		if (!p)
			return GRAFT_ENOMEM;
		net->node = p;
		net->cap *= 2;
	}
	struct nn__node *d = &net->node[net->n];
	*d = (struct nn__node){ .kind = kind, .in = in, .in2 = in2, .c = c, .h = h, .w = w };
	if (name)
		strcpy(d->name, name);
	return net->n++;
}

int nn_net_conv(nn_net *net, int in, int cout, int k, int stride, int groups,
                const char *name)
{
	if (in < 0 || in >= net->n || k < 1 || k % 2 == 0)
		return GRAFT_EINVAL;
	/* Copied, not pointed at: push() may move the node array. */
	const struct nn__node x = net->node[in];
	nn_conv_shape s = { .cin = x.c, .h = x.h, .w = x.w, .cout = cout, .k = k,
	                    .stride = stride, .pad = k / 2, .groups = groups };
	if (nn_conv_shape_init(&s))
		return GRAFT_EINVAL;
	int id = push(net, NODE_CONV, in, -1, cout, s.oh, s.ow, name);
	if (id > 0) {
		net->node[id].conv = s;
		net->node[id].nw = (size_t)cout * (x.c / groups) * k * k;
	}
	return id;
}

int nn_net_bn(nn_net *net, int in, int relu, const char *name)
{
	if (in < 0 || in >= net->n)
		return GRAFT_EINVAL;
	const struct nn__node x = net->node[in];
	int id = push(net, NODE_BN, in, -1, x.c, x.h, x.w, name);
	if (id > 0) {
		net->node[id].relu = relu;
		net->node[id].nw = net->node[id].nb = x.c;
	}
	return id;
}

int nn_net_relu(nn_net *net, int in)
{
	if (in < 0 || in >= net->n)
		return GRAFT_EINVAL;
	const struct nn__node *x = &net->node[in];
	return push(net, NODE_RELU, in, -1, x->c, x->h, x->w, NULL);
}

int nn_net_add(nn_net *net, int a, int b, int relu)
{
	if (a < 0 || a >= net->n || b < 0 || b >= net->n)
		return GRAFT_EINVAL;
	const struct nn__node *x = &net->node[a], *y = &net->node[b];
	if (x->c != y->c || x->h != y->h || x->w != y->w)
		return GRAFT_EINVAL;
	int id = push(net, NODE_ADD, a, b, x->c, x->h, x->w, NULL);
	if (id > 0)
		net->node[id].relu = relu;
	return id;
}

int nn_net_maxpool(nn_net *net, int in)
{
	if (in < 0 || in >= net->n)
		return GRAFT_EINVAL;
	const struct nn__node *x = &net->node[in];
	return push(net, NODE_MAXPOOL, in, -1, x->c, x->h / 2, x->w / 2, NULL);
}

int nn_net_gap(nn_net *net, int in)
{
	if (in < 0 || in >= net->n)
		return GRAFT_EINVAL;
	return push(net, NODE_GAP, in, -1, net->node[in].c, 1, 1, NULL);
}

int nn_net_linear(nn_net *net, int in, int out, const char *name)
{
	if (in < 0 || in >= net->n)
		return GRAFT_EINVAL;
	const struct nn__node x = net->node[in];
	int id = push(net, NODE_LINEAR, in, -1, out, 1, 1, name);
	if (id > 0) {
		net->node[id].nw = (size_t)out * x.c * x.h * x.w;
		net->node[id].nb = out;
	}
	return id;
}

void nn_net_freeze(nn_net *net, int node)
{
	if (node > 0 && node < net->n && !net->finalized)
		net->node[node].frozen = 1;
}

void nn_net_shape(const nn_net *net, int node, int *c, int *h, int *w)
{
	const struct nn__node *d = &net->node[node];
	*c = d->c;
	*h = d->h;
	*w = d->w;
}

int nn_net_nodes(const nn_net *net)
{
	return net->n;
}

void nn__net_mark_graft(nn_net *net, int first, int last)
{
	net->graft_first = first;
	net->graft_last = last;
}

int nn_net_graft_shape(const nn_net *net, int *c, int *h, int *w)
{
	if (!net->graft_last)
		return 0;
	nn_net_shape(net, net->graft_last, c, h, w);
	return 1;
}

int nn__readers(const nn_net *net, int j, int from)
{
	int r = 0;
	for (int i = from; i < net->n; i++)
		r += (net->node[i].in == j) + (net->node[i].in2 == j);
	return r;
}

size_t nn__node_size(const struct nn__node *d)
{
	return (size_t)d->c * d->h * d->w;
}

/* A node needs a gradient if it has parameters that train or reads a node
 * that needs one; nodes are in topological order, so one pass settles it. */
static void mark_grads(nn_net *net)
{
	for (int i = 1; i < net->n; i++) {
		struct nn__node *d = &net->node[i];
		int own = d->nw > 0 && !d->frozen;
		int from_in = net->node[d->in].needs_grad ||
		              (d->in2 >= 0 && net->node[d->in2].needs_grad);
		d->needs_grad = own || from_in;
	}
}

/* Sizes every block, allocates them, and points each node into them. */
static int layout(nn_net *net, int max_batch)
{
	size_t np = 0, nf = 0, na = 0, ws = 0;

	for (int i = 1; i < net->n; i++) {
		struct nn__node *d = &net->node[i];
		size_t pw = d->nw + d->nb;
		if (d->frozen)
			nf += pw;
		else
			np += pw;
		if (d->kind == NODE_BN)
			nf += 4 * (size_t)d->c; /* running mean, var; saved mean, invstd */
		na += nn__node_size(d) * max_batch * (d->needs_grad ? 2 : 1);
		if (d->kind == NODE_CONV) {
			size_t w = nn_conv_workspace(&d->conv);
			ws = w > ws ? w : ws;
		}
	}
	const struct nn__node *last = &net->node[net->n - 1];
	net->params = calloc(np + 1, sizeof(float));
	net->grads = calloc(np + 1, sizeof(float));
	net->moments = calloc(np + 1, sizeof(float));
	net->fixed = calloc(nf + 1, sizeof(float));
	net->act = malloc((na + 1) * sizeof(float));
	net->ws = malloc((ws + 1) * sizeof(float));
	net->dlogits = malloc((nn__node_size(last) * max_batch + 1) * sizeof(float));
	if (!net->params || !net->grads || !net->moments || !net->fixed || !net->act ||
	    !net->ws || !net->dlogits)
		return GRAFT_ENOMEM;
	net->nparams = np;
	net->nfixed = nf;
	net->nact = na;

	float *p = net->params, *g = net->grads, *f = net->fixed, *a = net->act;
	for (int i = 1; i < net->n; i++) {
		struct nn__node *d = &net->node[i];
		float **blk = d->frozen ? &f : &p;
		d->wt = *blk;
		d->bs = d->nb ? *blk + d->nw : NULL;
		if (!d->frozen) {
			d->dwt = g;
			d->dbs = d->nb ? g + d->nw : NULL;
			g += d->nw + d->nb;
		}
		*blk += d->nw + d->nb;
		if (d->kind == NODE_BN) {
			d->rmean = f;
			d->rvar = f + d->c;
			d->smean = f + 2 * d->c;
			d->sinvstd = f + 3 * d->c;
			f += 4 * (size_t)d->c;
		}
		d->y = a;
		a += nn__node_size(d) * max_batch;
		if (d->needs_grad) {
			d->dy = a;
			a += nn__node_size(d) * max_batch;
		}
	}
	return 0;
}

/* FNV-1a of a node's name: with the seed, it picks the node's own stream of
 * random numbers, so a tensor's initial values depend only on the seed and its
 * name.  Adding a graft to a network therefore leaves every other tensor's
 * initialization as it was, which is what a paired comparison needs. */
static uint64_t name_hash(const char *name, int node)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return *name ? h : h ^ (uint64_t)node; /* unnamed nodes: by position */
}

/* PyTorch's defaults: conv and linear weights (and linear bias) uniform in
 * +-1/sqrt(fan_in) (Kaiming-uniform with a = sqrt(5)); BN weight 1, bias 0,
 * running mean 0, running variance 1. */
static void init_params(nn_net *net, uint64_t seed)
{
	for (int i = 1; i < net->n; i++) {
		struct nn__node *d = &net->node[i];
		nn_rng r;
		nn_rng_seed(&r, seed ^ name_hash(d->name, i));
		if (d->kind == NODE_BN) {
			for (int c = 0; c < d->c; c++) {
				d->wt[c] = 1.0f;
				d->bs[c] = 0.0f;
				d->rmean[c] = 0.0f;
				d->rvar[c] = 1.0f;
			}
		} else if (d->kind == NODE_CONV || d->kind == NODE_LINEAR) {
			size_t fan_in = d->nw / (d->kind == NODE_CONV ? (size_t)d->c : (size_t)d->nb);
			double bound = 1.0 / sqrt((double)fan_in);
			for (size_t j = 0; j < d->nw; j++)
				d->wt[j] = (float)((2.0 * nn_rng_uniform(&r) - 1.0) * bound);
			for (size_t j = 0; j < d->nb; j++)
				d->bs[j] = (float)((2.0 * nn_rng_uniform(&r) - 1.0) * bound);
		}
	}
}

int nn_net_finalize(nn_net *net, int max_batch, uint64_t seed)
{
	if (net->finalized || max_batch < 1 || net->n < 2)
		return GRAFT_EINVAL;
	mark_grads(net);
	int rc = layout(net, max_batch);
	if (rc)
		return rc;
	net->max_batch = max_batch;
	net->finalized = 1;
	init_params(net, seed);
	return 0;
}

int64_t nn_net_params(const nn_net *net)
{
	int64_t total = 0;
	for (int i = 1; i < net->n; i++)
		total += (int64_t)(net->node[i].nw + net->node[i].nb);
	return total;
}

int64_t nn_net_flops(const nn_net *net)
{
	int64_t total = 0;
	for (int i = 1; i < net->n; i++) {
		const struct nn__node *d = &net->node[i];
		if (d->kind == NODE_CONV)
			total += 2 * (int64_t)d->nw * d->h * d->w;
		else if (d->kind == NODE_LINEAR)
			total += 2 * (int64_t)d->nw;
	}
	return total;
}

void nn_net_param_block(nn_net *net, float **params, float **grads, size_t *len)
{
	if (params)
		*params = net->params;
	if (grads)
		*grads = net->grads;
	if (len)
		*len = net->nparams;
}
