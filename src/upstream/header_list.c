/* header_list.c — header lists in curl's shape, sluice's allocation (upstream.h).
 *
 * `struct curl_slist` is part of libcurl's stable ABI ({data, next}); curl
 * only reads the lists it is given, so who allocates them is ours to choose.
 * Allocating here lets every stage build its headers with libcurl not loaded
 * (curl_api.h). */
#include "sluice/upstream.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct curl_slist *sl_header_list_append(struct curl_slist *list, const char *line)
{
    size_t n = strlen(line);
    struct curl_slist *node = malloc(sizeof(*node) + n + 1);
    if (!node)
        return NULL;
    node->data = memcpy((char *)(node + 1), line, n + 1); /* one block: the node and its line */
    node->next = NULL;
    if (!list)
        return node;
    struct curl_slist *last = list;
    while (last->next)
        last = last->next;
    last->next = node;
    return list;
}

void sl_header_list_free(struct curl_slist *list)
{
    while (list) {
        struct curl_slist *next = list->next;
        free(list);
        list = next;
    }
}
