/* replay.c — runs a libFuzzer target over a corpus without libFuzzer.
 *
 * Under gcc (and in `make test`) every fuzz target links with this file: each
 * argument is a file or a folder of files, fed one by one to
 * LLVMFuzzerTestOneInput under the sanitizers. Prints one PASS line per target. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    return 0;
}

static int replay_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* an absent corpus is an empty one */
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return replay_file(path);
    }
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        replay_path(sub, count);
    }
    closedir(d);
    return 0;
}

int main(int argc, char **argv)
{
    int count = 0;
    /* The empty input and a few classic troublemakers, always. */
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    LLVMFuzzerTestOneInput((const uint8_t *)"\0\0\0\0", 4);
    LLVMFuzzerTestOneInput((const uint8_t *)"{\"a\":[[[[[[[[", 13);
    for (int i = 1; i < argc; i++)
        replay_path(argv[i], &count);
    const char *name = strrchr(argv[0], '/');
    printf("PASS fuzz_replay.%s (%d inputs)\n", name ? name + 1 : argv[0], count);
    return 0;
}
