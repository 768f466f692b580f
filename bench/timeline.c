#include "timeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMELINE_HIST_BITS 6

int timeline_init(struct timeline *t, uint64_t start_ns, unsigned width_ms, unsigned max_seconds)
{
    t->start_ns = start_ns;
    t->width_ns = (uint64_t)width_ms * 1000000u;
    t->n_buckets = (size_t)max_seconds * 1000u / width_ms + 1;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    atomic_init(&t->dropped, 0);
    return t->buckets ? 0 : ENOMEM;
}

void timeline_free(struct timeline *t)
{
    for (size_t i = 0; t->buckets && i < t->n_buckets; i++) {
        struct timeline_bucket *b = t->buckets[i];
        if (b) {
            hist_free(&b->latency_us);
            free(b);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
}

/* The bucket for slot i, allocated by whichever thread needs it first. */
static struct timeline_bucket *bucket_get(struct timeline *t, size_t i)
{
    struct timeline_bucket *b = atomic_load(&t->buckets[i]);
    if (b)
        return b;
    struct timeline_bucket *fresh = calloc(1, sizeof *fresh);
    if (!fresh || hist_init(&fresh->latency_us, TIMELINE_HIST_BITS)) {
        free(fresh);
        return NULL;
    }
    atomic_init(&fresh->errors, 0);
    if (atomic_compare_exchange_strong(&t->buckets[i], &b, fresh))
        return fresh;
    hist_free(&fresh->latency_us);
    free(fresh);
    return b;
}

void timeline_record(struct timeline *t, uint64_t now_ns, uint64_t latency_us, bool ok)
{
    size_t i = now_ns > t->start_ns ? (size_t)((now_ns - t->start_ns) / t->width_ns) : 0;
    struct timeline_bucket *b = i < t->n_buckets ? bucket_get(t, i) : NULL;
    if (!b) {
        atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
        return;
    }
    if (ok)
        hist_record(&b->latency_us, latency_us);
    else
        atomic_fetch_add_explicit(&b->errors, 1, memory_order_relaxed);
}

bool timeline_gnuplot_found(void)
{
    const char *path = getenv("PATH");
    char *dirs = strdup(path && *path ? path : "/usr/bin:/bin");
    bool found = false;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof full, "%s/gnuplot", d);
        found = access(full, X_OK) == 0;
    }
    free(dirs);
    return found;
}

/* Columns: bucket start (s), successful ops/s, errors/s, p50 and p99 latency (ms). */
static int write_data(const struct timeline *t, const char *path, double end_s)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "raft-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    double width_s = (double)t->width_ns / 1e9;
    fprintf(f, "# time_s ok_per_s errors_per_s p50_ms p99_ms (per %.1f s)\n", width_s);
    for (size_t i = 0; i < t->n_buckets && (double)i * width_s < end_s; i++) {
        const struct timeline_bucket *b = t->buckets[i];
        uint64_t ok = b ? hist_count(&b->latency_us) : 0, err = b ? b->errors : 0;
        /* The last bucket is cut short by the end of the run. */
        double span = end_s - (double)i * width_s < width_s ? end_s - (double)i * width_s : width_s;
        fprintf(f, "%.3f %.1f %.1f ", (double)i * width_s, (double)ok / span, (double)err / span);
        /* A bucket without successes has no latency: a gap in the line, not a zero. */
        if (ok)
            fprintf(f, "%.3f %.3f\n", (double)hist_quantile(&b->latency_us, 0.5) / 1e3,
                    (double)hist_quantile(&b->latency_us, 0.99) / 1e3);
        else
            fprintf(f, "NaN NaN\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

int timeline_plot(const struct timeline *t, const char *path, const char *title, double end_s,
                  double fault_s, const char *fault_label)
{
    char data[4096];
    snprintf(data, sizeof data, "%s.dat", path);
    if (write_data(t, data, end_s))
        return -1;
    const char *ext = strrchr(path, '.');
    bool png = ext && strcmp(ext, ".png") == 0;
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "raft-bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    fprintf(g, "set terminal %s size 1000,500\n", png ? "pngcairo" : "svg dynamic");
    fprintf(g, "set output '%s'\n", path);
    fprintf(g, "set title \"%s\" noenhanced\n", title);
    fprintf(g, "set xlabel 'time (s)'\nset ylabel 'successful ops/s'\n"
               "set y2label 'p99 latency (ms)'\nset ytics nomirror\nset y2tics\n"
               "set yrange [0:*]\nset y2range [0:*]\nset grid\nset key top left\n"
               "set datafile missing 'NaN'\n");
    if (fault_s >= 0)
        fprintf(g,
                "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc 'red'\n"
                "set label '%s' at %.3f, graph 0.95 textcolor 'red' offset 1,0\n",
                fault_s, fault_s, fault_label, fault_s);
    fprintf(g,
            "plot '%s' using 1:2 with steps lw 2 title 'ops/s', "
            "'' using 1:5 axes x1y2 with steps lw 1 title 'p99 ms', "
            "'' using 1:3 with steps lw 1 lc 'red' title 'errors/s'\n",
            data);
    int rv = pclose(g);
    if (rv != 0) {
        fprintf(stderr, "raft-bench: gnuplot failed drawing %s (exit %d)\n", path, rv);
        return -1;
    }
    return 0;
}
