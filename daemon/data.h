/*
 * data.h - the dataset a command or a job names: loaded, split into training
 * and validation images, and identified by its content; and where graftd
 * keeps its data by default.
 */
#ifndef GRAFT_DATA_H
#define GRAFT_DATA_H

#include <stddef.h>

#include "nn/nn.h"

/* Either a dataset directory (IDX files named as MNIST's or CIFAR-10
 * batches) or a pair of IDX files; the last `validation` training images are
 * held out (negative: 10000; at most a sixth of them; 0: none). */
typedef struct data_src {
	const char *dir;
	const char *train_images, *train_labels;
	long validation;
} data_src;

int data_load_split(const data_src *src, nn_dataset *train, nn_dataset *val,
                    char *err, size_t errlen);

/* The identity of a split: SHA-256 over the shapes, pixels and labels of
 * train and val, so the same images split the same way hash the same
 * wherever they were read from. */
void data_sha256(const nn_dataset *train, const nn_dataset *val, char hex[65]);

/* graftd's data directory when none is given: $GRAFT_DATA_DIR, else
 * $XDG_DATA_HOME/graft, else $HOME/.local/share/graft. */
void data_dir_default(char *out, size_t len);

#endif
