/* access.h — renders one access-log line from a finished request. */
#ifndef SLUICE_ACCESS_H
#define SLUICE_ACCESS_H

#include "sluice/req.h"

/* Appends the JSON line for r to the access log (see log.h). Never logs keys. */
void sl_access_log_req(const sl_req *r);
const char *sl_cache_outcome_name(sl_cache_outcome c);

#endif
