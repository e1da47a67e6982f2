/* What a control-plane transaction body decided to answer: a success
 * status and body, or a client error (problem code and detail), kept apart
 * from the transaction so that the runners (mutate.h) reply only once it
 * has committed, and the idempotency record (idempotency.h) stores it. */
#ifndef CP_OUTCOME_H
#define CP_OUTCOME_H

#include <jansson.h>

#include "db.h"
#include "problem.h"

struct cp_outcome {
	unsigned status;          /* success status; 0 when `problem` is set */
	json_t *body;             /* owned */
	char location[256];
	int sealed;               /* the body holds a secret: never store it in clear */
	int replayed;             /* the first answer to an earlier request, again */
	int problem;              /* a client error: reply with prob/detail */
	enum problem_code prob;
	json_t *prob_extra;       /* owned, may be NULL */
	char detail[400];
};

/* Records a client error in `out`; returns DB_ROLLBACK. */
enum db_status cp_fail(struct cp_outcome *out, enum problem_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Records success: `body` is stolen. Returns DB_OK. */
enum db_status cp_done(struct cp_outcome *out, unsigned status, json_t *body);
/* Frees what `out` owns and clears it for another attempt. */
void cp_outcome_reset(struct cp_outcome *out);

#endif
