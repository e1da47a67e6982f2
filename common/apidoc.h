/* The service's OpenAPI document, served at GET /openapi.yaml.
 *
 * Compiled into each service from its own <service>/openapi.yaml by the
 * Makefile (a generated C array, $(BUILD)/gen/<service>-openapi.c): the
 * binary needs no file at run time, and what it serves is exactly the
 * document of the source it was built from. Each service binary links
 * exactly one definition. */
#ifndef CT_APIDOC_H
#define CT_APIDOC_H

#include <stddef.h>

/* The document's bytes (static storage, never freed) and their count. */
const unsigned char *apidoc_yaml(size_t *len);

/* The media type of the answer (RFC 9512). */
#define APIDOC_CONTENT_TYPE "application/yaml"

#endif
