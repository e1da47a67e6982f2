/* The document worker: the two threads that build signed documents (one
 * cells' deltas, one full documents) and publish them, off the request
 * path (config_doc.h). */
#ifndef CP_DOC_WORKER_H
#define CP_DOC_WORKER_H

#include <stddef.h>

struct cp_app;
struct doc_worker;

/* Starts the threads. NULL (and `err` says why) when it cannot. */
struct doc_worker *doc_worker_start(struct cp_app *app, char *err, size_t errlen);
/* Stops the threads; accepts NULL. */
void doc_worker_stop(struct doc_worker *w);
/* Runs a pass soon: a version rose (NOTIFY), or a request waits for a
 * subject. Accepts NULL; `w` is a struct doc_worker (a long-poll hook). */
void doc_worker_kick(void *w);

#endif
