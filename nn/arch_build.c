/*
 * arch_build.c - the network a graft-arch/1 description stands for, op by op
 * as ARCH-FORMAT.md defines them, with the tensor names it gives.
 */
#include <stdio.h>

#include "nn/net_internal.h"

/* conv -> BN (-> ReLU) under prefix p ("blocks.3" gives blocks.3.conv,
 * blocks.3.bn); returns the BN node. */
static int conv_bn(nn_net *net, int in, int cout, int k, int stride, int relu,
                   const char *p, const char *conv, const char *bn)
{
	char cn[NN_NAME_MAX], bnn[NN_NAME_MAX];
	snprintf(cn, sizeof(cn), "%s.%s", p, conv);
	snprintf(bnn, sizeof(bnn), "%s.%s", p, bn);
	int c = nn_net_conv(net, in, cout, k, stride, 1, cn);
	return c < 0 ? c : nn_net_bn(net, c, relu, bnn);
}

/* Identity when shapes already agree, else Conv1x1 (stride s) -> BN. */
static int project(nn_net *net, int in, int cout, int stride, const char *p)
{
	int c, h, w;
	nn_net_shape(net, in, &c, &h, &w);
	if (c == cout && stride == 1)
		return in;
	return conv_bn(net, in, cout, 1, stride, 0, p, "conv", "bn");
}

static int block(nn_net *net, int in, const nn_block_spec *b, const char *p)
{
	char name[NN_NAME_MAX];
	int cin, h, w, x;

	nn_net_shape(net, in, &cin, &h, &w);
	switch (b->op) {
	case NN_OP_CONV3:
	case NN_OP_CONV5:
		return conv_bn(net, in, b->channels, b->op == NN_OP_CONV3 ? 3 : 5, b->stride,
		               1, p, "conv", "bn");
	case NN_OP_SEP3:
		snprintf(name, sizeof(name), "%s.dw", p);
		x = nn_net_conv(net, in, cin, 3, b->stride, cin, name);
		if (x < 0)
			return x;
		return conv_bn(net, x, b->channels, 1, 1, 1, p, "pw", "bn");
	case NN_OP_RES3: {
		int a = conv_bn(net, in, b->channels, 3, b->stride, 1, p, "conv1", "bn1");
		if (a < 0)
			return a;
		int r = conv_bn(net, a, b->channels, 3, 1, 0, p, "conv2", "bn2");
		snprintf(name, sizeof(name), "%s.shortcut", p);
		int s = project(net, in, b->channels, b->stride, name);
		if (r < 0 || s < 0)
			return r < 0 ? r : s;
		return nn_net_add(net, r, s, 1);
	}
	case NN_OP_POOL:
		x = nn_net_maxpool(net, in);
		if (x < 0)
			return x;
		return conv_bn(net, x, b->channels, 1, 1, 1, p, "conv", "bn");
	}
	return GRAFT_EINVAL;
}

/* h = stem(x) + BN(Conv1x1(G(x))), G's layers frozen. */
static int graft(nn_net *net, int stem, const nn_arch *a)
{
	char p[32];
	int g = 0, c, h, w, first = nn_net_nodes(net);

	for (int i = 0; i < a->graft_nlayers; i++) {
		snprintf(p, sizeof(p), "graft.%d", i);
		g = conv_bn(net, g, a->graft_channels[i], a->graft_kernel[i], 1, 1, p,
		            "conv", "bn");
		if (g < 0)
			return g;
		if (!a->graft_trainable) {
			nn_net_freeze(net, g);
			nn_net_freeze(net, g - 1);
		}
	}
	if (!a->graft_trainable)
		nn__net_mark_graft(net, first, g);
	nn_net_shape(net, stem, &c, &h, &w);
	int pr = conv_bn(net, g, c, 1, 1, 0, "graft_proj", "conv", "bn");
	return pr < 0 ? pr : nn_net_add(net, stem, pr, 0);
}

int nn_net_from_arch(nn_net **out, const nn_arch *a, int max_batch, uint64_t seed,
                     char *err, size_t errlen)
{
	char p[32];
	int out_of[NN_MAX_BLOCKS + 1]; /* out_of[j + 1]: block j's output, [0] the stem */
	nn_net *net = nn_net_new(a->in_c, a->in_h, a->in_w);
	int rc = GRAFT_ENOMEM, x;

	*out = NULL;
	if (!net)
		goto fail;
	x = conv_bn(net, 0, a->stem_channels, a->stem_kernel, 1, 1, "stem", "conv", "bn");
	if (x >= 0 && a->graft_nlayers > 0)
		x = graft(net, x, a);
	out_of[0] = x;
	for (int i = 0; i < a->nblocks && x >= 0; i++) {
		const nn_block_spec *b = &a->blocks[i];
		snprintf(p, sizeof(p), "blocks.%d", i);
		x = block(net, x, b, p);
		if (x >= 0 && b->skip_from != NN_SKIP_NONE) {
			char sp[NN_NAME_MAX];
			int c, h, w, from = out_of[b->skip_from + 1];
			nn_net_shape(net, x, &c, &h, &w);
			snprintf(sp, sizeof(sp), "%s.skip", p);
			int s = project(net, from, c, 1, sp);
			x = s < 0 ? s : nn_net_add(net, x, s, 0);
		}
		out_of[i + 1] = x;
	}
	if (x >= 0)
		x = nn_net_gap(net, x);
	if (x >= 0)
		x = nn_net_linear(net, x, a->classes, "head");
	if (x < 0) {
		rc = x;
		snprintf(err, errlen, "the architecture does not build: a layer's shape is "
		         "impossible (a skip_from between blocks of different sizes?)");
		goto fail;
	}
	rc = nn_net_finalize(net, max_batch, seed);
	if (rc) {
		snprintf(err, errlen, "cannot allocate the network for batch %d: %s",
		         max_batch, graft_strerror(rc));
		goto fail;
	}
	*out = net;
	return 0;
fail:
	if (rc == GRAFT_ENOMEM && err && !*err)
		snprintf(err, errlen, "out of memory");
	nn_net_free(net);
	return rc;
}
