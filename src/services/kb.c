/* kb.c — the knowledge base: markdown documents ranked by BM25. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/triage.h"

enum { MAX_DOCS = 10000, MAX_DOC_BYTES = 1 << 20 };

typedef struct doc {
    char *title, *path, *body;
    char **terms; /* lower-cased tokens of title (twice: titles weigh more) and body */
    size_t n_terms;
} doc;

struct sl_kb {
    doc *docs;
    size_t n;
    double avg_len;
};

/* Words too common to tell documents apart: they would make every document
 * "share a term" with every ticket. */
static bool stopword(const char *w)
{
    static const char *const words[] = {
        "a",    "an",  "and",  "are",  "as",   "at",   "be",  "by",   "can", "do",    "for",
        "from", "has", "have", "i",    "if",   "in",   "is",  "it",   "its", "me",    "my",
        "no",   "not", "of",   "on",   "or",   "our",  "so",  "that", "the", "their", "this",
        "to",   "was", "we",   "were", "will", "with", "you", "your",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(words); i++) {
        if (strcmp(w, words[i]) == 0)
            return true;
    }
    return false;
}

/* Splits text into lower-case alphanumeric tokens, appended to *terms. */
static void tokenize(const char *s, size_t len, char ***terms, size_t *n, size_t *cap)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && !isalnum((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (i < len && isalnum((unsigned char)s[i]))
            i++;
        if (i == start || i - start > 64)
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *terms = realloc(*terms, *cap * sizeof(char *));
        }
        char *t = strndup(s + start, i - start);
        for (char *p = t; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (stopword(t)) {
            free(t);
            continue;
        }
        (*terms)[(*n)++] = t;
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_DOC_BYTES + 1);
    *len = buf ? fread(buf, 1, MAX_DOC_BYTES, f) : 0;
    fclose(f);
    if (buf)
        buf[*len] = '\0';
    return buf;
}

static void load_doc(sl_kb *kb, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        return;
    doc *d = &kb->docs[kb->n++];
    d->path = strdup(path);
    d->body = text;
    const char *h = strstr(text, "# ");
    const char *eol = h ? strchr(h, '\n') : NULL;
    d->title = h ? strndup(h + 2, eol ? (size_t)(eol - h - 2) : strlen(h + 2)) : strdup(name);
    size_t cap = 0;
    tokenize(d->title, strlen(d->title), &d->terms, &d->n_terms, &cap);
    tokenize(d->title, strlen(d->title), &d->terms, &d->n_terms, &cap);
    tokenize(text, len, &d->terms, &d->n_terms, &cap);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

sl_kb *sl_kb_load(const char *dir)
{
    sl_kb *kb = calloc(1, sizeof(*kb));
    if (!kb)
        return NULL;
    DIR *dh = dir ? opendir(dir) : NULL;
    if (!dh)
        return kb;
    char *names[MAX_DOCS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dh)) && n < MAX_DOCS) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".md") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(dh);
    qsort(names, n, sizeof(char *), by_name);
    kb->docs = calloc(n ? n : 1, sizeof(doc));
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        load_doc(kb, dir, names[i]);
        free(names[i]);
    }
    for (size_t i = 0; i < kb->n; i++)
        total += (double)kb->docs[i].n_terms;
    kb->avg_len = kb->n ? total / (double)kb->n : 1;
    return kb;
}

void sl_kb_free(sl_kb *kb)
{
    if (!kb)
        return;
    for (size_t i = 0; i < kb->n; i++) {
        doc *d = &kb->docs[i];
        for (size_t t = 0; t < d->n_terms; t++)
            free(d->terms[t]);
        free(d->terms);
        free(d->title);
        free(d->path);
        free(d->body);
    }
    free(kb->docs);
    free(kb);
}

size_t sl_kb_size(const sl_kb *kb)
{
    return kb ? kb->n : 0;
}

static size_t count_in(const doc *d, const char *term)
{
    size_t c = 0;
    for (size_t i = 0; i < d->n_terms; i++)
        c += strcmp(d->terms[i], term) == 0;
    return c;
}

static int by_score(const void *a, const void *b)
{
    double x = ((const sl_kb_hit *)a)->score, y = ((const sl_kb_hit *)b)->score;
    return (x < y) - (x > y);
}

size_t sl_kb_search(const sl_kb *kb, sl_str query, size_t k, sl_kb_hit *out)
{
    if (!kb || !kb->n || !k)
        return 0;
    char **q = NULL;
    size_t nq = 0, cap = 0;
    tokenize(query.p, query.len, &q, &nq, &cap);
    sl_kb_hit *all = calloc(kb->n, sizeof(*all));
    const double k1 = 1.2, b = 0.75;
    for (size_t i = 0; i < nq; i++) {
        bool dup = false; /* each distinct query term counts once */
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(q[j], q[i]) == 0;
        size_t df = 0;
        for (size_t d = 0; d < kb->n && !dup; d++)
            df += count_in(&kb->docs[d], q[i]) > 0;
        if (dup || !df)
            continue;
        double idf = log(1.0 + ((double)kb->n - (double)df + 0.5) / ((double)df + 0.5));
        for (size_t d = 0; d < kb->n; d++) {
            double tf = (double)count_in(&kb->docs[d], q[i]);
            double len = (double)kb->docs[d].n_terms;
            all[d].score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / kb->avg_len));
        }
    }
    for (size_t d = 0; d < kb->n; d++) {
        all[d].title = kb->docs[d].title;
        all[d].path = kb->docs[d].path;
        all[d].body = kb->docs[d].body;
    }
    qsort(all, kb->n, sizeof(*all), by_score);
    size_t n = 0;
    while (n < k && n < kb->n && all[n].score > 0) {
        out[n] = all[n];
        n++;
    }
    for (size_t i = 0; i < nq; i++)
        free(q[i]);
    free(q);
    free(all);
    return n;
}
