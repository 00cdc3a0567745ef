/* price.h — what a provider's usage costs, by the kind of each token.
 *
 * Providers count prompt-cache tokens two ways: OpenAI's prompt_tokens
 * includes the cached ones (prompt_tokens_details.cached_tokens), Anthropic's
 * input_tokens stands beside cache_read_input_tokens and
 * cache_creation_input_tokens. sl_usage says which, and sl_price_cost prices
 * each part once: uncached input at `input`, cache reads at `cached_input`,
 * 5-minute cache writes at `cache_write`, 1-hour writes at `cache_write_1h`,
 * completion at `output` (reasoning tokens are part of the completion, never
 * priced twice). Absent prices default to input, 1.25x input and 2x input.
 *
 * Owns nothing: pure arithmetic, shared by the meter and the budget estimate. */
#ifndef SLUICE_PRICE_H
#define SLUICE_PRICE_H

#include "sluice/config.h"

typedef struct sl_usage {
    long prompt, completion;
    long cached;           /* prompt tokens read from the prompt cache */
    long cache_write;      /* prompt tokens written to it, both TTLs */
    long cache_write_1h;   /* ... of which for an hour */
    long reasoning;        /* part of completion */
    bool prompt_has_cache; /* prompt counts cached + cache_write (OpenAI's convention) */
} sl_usage;

/* USD per 1M tokens of each kind, defaults applied. */
double sl_price_cached_input(const sl_price_conf *p);
double sl_price_cache_write(const sl_price_conf *p);
double sl_price_cache_write_1h(const sl_price_conf *p);

/* The prompt tokens that were neither read from nor written to the cache. */
long sl_usage_uncached(const sl_usage *u);

/* Cost in USD of u at price p. */
double sl_price_cost(const sl_price_conf *p, const sl_usage *u);

#endif
