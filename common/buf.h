/* A growable byte buffer, always NUL-terminated. */
#ifndef CT_BUF_H
#define CT_BUF_H

#include <stddef.h>

struct buf {
	char *p;       /* NULL until the first append; owned */
	size_t len, cap;
	int failed;    /* an allocation failed: the content is incomplete */
};

void buf_append(struct buf *b, const void *data, size_t len);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the string over (caller frees); NULL if an allocation failed. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

#endif
