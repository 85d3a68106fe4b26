/*
 * net_internal.h - the node list behind nn_net, shared by the files that
 * build, run and save networks.  Not part of nn's public interface.
 */
#ifndef GRAFT_NN_NET_INTERNAL_H
#define GRAFT_NN_NET_INTERNAL_H

#include "nn/nn.h"

enum nn__kind {
	NODE_INPUT, NODE_CONV, NODE_BN, NODE_RELU, NODE_ADD, NODE_MAXPOOL,
	NODE_GAP, NODE_LINEAR
};

struct nn__node {
	enum nn__kind kind;
	int in, in2;          /* nodes read (in2 only for add, else -1) */
	int c, h, w;          /* output shape per image */
	int relu;             /* BN and add: ReLU fused after */
	int frozen;           /* parameters fixed, BN in eval mode */
	int needs_grad;       /* a gradient flows into this node's output */
	char name[64];        /* tensor name prefix; suffixes fit in NN_NAME_MAX */
	nn_conv_shape conv;
	size_t nw, nb;        /* parameter counts: weight (BN: gamma), bias (BN: beta) */
	float *wt, *bs, *dwt, *dbs;    /* weight (BN: gamma), bias (BN: beta), their gradients */
	float *rmean, *rvar, *smean, *sinvstd; /* BN statistics */
	float *y, *dy;        /* (max_batch, c, h, w) */
};

/* oneDNN plans kept per net: training, evaluation, and the evaluation of a
 * last partial batch, at most two batch sizes at once. */
#define NN__MAX_PLANS 4

struct nn_net {
	struct nn__node *node;
	int n, cap;
	int finalized, max_batch, batch;
	float *params, *grads, *moments; /* trainable, nparams each */
	float *fixed;                    /* frozen parameters and BN statistics */
	float *act;                      /* activations and their gradients */
	float *ws;                       /* convolution workspace */
	float *dlogits;
	const float *input;              /* borrowed, the last forward's x */
	int graft_first, graft_last;     /* the graft's nodes (0, 0: none) */
	const float *graft_feats;        /* borrowed: the graft's output for this
	                                    batch, precomputed; NULL: compute it */
	size_t nparams, nfixed, nact;
	struct nn__plan *plan;           /* the last forward pass's, or NULL */
	struct nn__plan *plans[NN__MAX_PLANS]; /* by batch and mode (net_dnnl.c) */
	unsigned long plan_clock;
	int plan_failed;                 /* 1: this net runs node by node */
	double plan_seconds;             /* spent making plans */
};

size_t nn__node_size(const struct nn__node *d);

/* How many times nodes from .. n-1 read node j (an add of it to itself
 * twice). */
int nn__readers(const nn_net *net, int j, int from);

/* While nn_net_profile_step runs on this thread: the seconds of each part
 * (NULL otherwise), and whether only the convolutions run. */
extern _Thread_local double *nn__prof;
extern _Thread_local int nn__prof_convs_only;
double nn__now(void);

/* Runs node i alone, in eval mode, on the net's current input. */
void nn__forward_node(nn_net *net, int i, int n);

/* Marks nodes first..last as the graft, whose output can be fed from a cache. */
void nn__net_mark_graft(nn_net *net, int first, int last);

#endif
