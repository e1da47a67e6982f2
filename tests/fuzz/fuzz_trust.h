/* A signing key of the fuzz targets that sign documents, and the trust
 * bundle that trusts it, loaded as a service loads its bundle file. */
#ifndef CT_FUZZ_TRUST_H
#define CT_FUZZ_TRUST_H

#include "cfgdoc.h"
#include "jwk.h"

/* Generates `key` and loads `trust` from a JWK set file naming it (written
 * to /tmp and removed); aborts on any failure. */
void fuzz_trust_init(struct jwk *key, struct cfgdoc_trust *trust);

#endif
