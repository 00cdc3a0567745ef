/* dialects.h — the provider dialects: one `const sl_dialect` per wire format.
 *
 * src/upstream/openai.c (chat completions), src/upstream/anthropic.c
 * (messages); later responses.c. The IR and the shape of a dialect are in
 * dialect.h (core); this header names the instances, which live with the
 * upstream glue because they speak to providers (paths, auth headers).
 *
 * Owns: nothing; the instances are constant. */
#ifndef SLUICE_DIALECTS_H
#define SLUICE_DIALECTS_H

#include "sluice/config.h"
#include "sluice/dialect.h"

extern const sl_dialect sl_dialect_openai;
extern const sl_dialect sl_dialect_anthropic;
extern const sl_dialect sl_dialect_responses; /* OpenAI's Responses API (responses.c) */

/* The dialect a provider of this kind speaks. */
const sl_dialect *sl_dialect_of_kind(sl_provider_kind kind);
/* The dialect provider p is spoken to in, for a client of this API: an
 * openai-kind provider with `api: responses` takes Responses requests as they are. */
const sl_dialect *sl_dialect_for(const sl_provider_conf *p, sl_api api);
/* The dialect a client of this API speaks. */
const sl_dialect *sl_dialect_of_api(sl_api api);

#endif
