/* batch.c — stage: concurrent embeddings share one upstream call (stub). */
#include "sluice/stages.h"

static sl_step batch_request(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    SL_UNUSED(ctx);
    return SL_NEXT;
}

const sl_stage sl_stage_batch = {
    .name = "batch",
    .on_request = batch_request,
};
