#include "report.h"

#include <inttypes.h>
#include <string.h>

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void text_kind(FILE *f, const char *name, const struct kind_stats *st, double secs)
{
    const struct histogram *h = &st->latency_us;
    uint64_t n = hist_count(h);
    fprintf(f,
            "%-5s %10.1f %9" PRIu64 " %7" PRIu64 " %9" PRIu64 " %8" PRIu64
            " %8.3f %8.3f %8.3f %8.3f %8.3f\n",
            name, secs > 0 ? (double)n / secs : 0.0, n, (uint64_t)st->errors,
            (uint64_t)st->not_found, (uint64_t)st->mismatch, ms(hist_quantile(h, 0.5)),
            ms(hist_quantile(h, 0.9)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
            ms(hist_max(h)));
}

/* All kinds merged (a scratch histogram). */
static int merged(const struct driver *d, struct kind_stats *all)
{
    memset(all, 0, sizeof *all);
    if (hist_init(&all->latency_us, d->stats[0].latency_us.bits))
        return -1;
    for (int k = 0; k < N_KINDS; k++) {
        hist_merge(&all->latency_us, &d->stats[k].latency_us);
        all->errors += d->stats[k].errors;
        all->not_found += d->stats[k].not_found;
        all->mismatch += d->stats[k].mismatch;
    }
    return 0;
}

static void text_verify(FILE *f, const struct driver *d, const struct run_summary *r)
{
    const _Atomic uint64_t *v = d->verdicts;
    uint64_t checked = v[LEDGER_INTACT] + v[LEDGER_UNKNOWN_APPLIED] + v[LEDGER_ABSENT] +
                       v[LEDGER_LOST] + v[LEDGER_UNEXPECTED];
    fprintf(f,
            "verify: %" PRIu64 " keys read back: %" PRIu64
            " hold their last acknowledged write, %" PRIu64
            " an unknown write that did apply, %" PRIu64 " absent and never acknowledged; %" PRIu64
            " lost, %" PRIu64 " unexpected, %" PRIu64 " could not be read\n",
            checked, (uint64_t)v[LEDGER_INTACT], (uint64_t)v[LEDGER_UNKNOWN_APPLIED],
            (uint64_t)v[LEDGER_ABSENT], (uint64_t)v[LEDGER_LOST], (uint64_t)v[LEDGER_UNEXPECTED],
            (uint64_t)d->unverified);
    fprintf(f,
            "verify: %" PRIu64 " writes ended unknown (failed or timed out: may or may not have "
            "applied)\n",
            r->unknown_writes);
    fprintf(f, "verify: %s\n",
            r->verify_ok ? "every acknowledged write survived"
            : d->verdicts[LEDGER_LOST] || d->verdicts[LEDGER_UNEXPECTED]
                ? "FAILED: acknowledged writes lost or values nobody wrote"
                : "INCOMPLETE: some keys could not be read back");
}

/* How the move-leader call ended: the one fault with an answer of its own. */
static void text_move(FILE *f, const struct run_summary *r)
{
    if (r->move_status == RAFTKV_OK)
        fprintf(f, "move leader: node %" PRIu64 " leads, answered after %.1f ms\n", r->move_leader,
                r->move_ms);
    else
        fprintf(f, "move leader: %s after %.1f ms (%s)\n", raftkv_status_str(r->move_status),
                r->move_ms, r->move_error);
}

static void text_fault(FILE *f, const struct run_summary *r)
{
    const char *what = leader_fault_labels[r->fault];
    if (!r->recovered)
        fprintf(f,
                "%s (node %" PRIu64 ") at %.2f s: writes did not resume before the end of the "
                "run (the last gap: %.0f ms)\n",
                what, r->fault_node, r->fault_s, r->gap.ms);
    else
        fprintf(f,
                "%s (node %" PRIu64 ") at %.3f s: unavailable %.1f ms (the largest gap between "
                "successful writes begun within %u ms of it: %.3f s .. %.3f s); writes resumed "
                "%.1f ms after it\n",
                what, r->fault_node, r->fault_s, r->gap.ms, DRIVER_FAULT_WINDOW_NS / 1000000u,
                r->gap.from_s, r->gap.to_s, r->recovery_ms);
    fprintf(f,
            "gaps to compare: the largest after it, begun any time: %.1f ms (%.3f s .. %.3f s); "
            "the largest before it: %.1f ms (%.3f s .. %.3f s)\n",
            r->after.ms, r->after.from_s, r->after.to_s, r->before.ms, r->before.from_s,
            r->before.to_s);
    if (r->fault == FAULT_MOVE)
        text_move(f, r);
}

void report_text(FILE *f, const struct driver *d, const struct run_summary *r)
{
    const struct bench_options *o = d->o;
    char mix[96];
    options_mix(o, mix, sizeof mix);
    fprintf(f, "raft-bench: %s; ", mix);
    if (r->nodes)
        fprintf(f, "%d nodes (spawned), ", r->nodes);
    fprintf(f,
            "%u clients over %u conns, %" PRIu64 " keys %s, %u-byte values, linearizable reads\n",
            o->clients, o->conns, o->keys, o->zipf > 0 ? "zipf" : "uniform", o->value_size);
    if (r->prefill_s >= 0)
        fprintf(f, "prefill: %" PRIu64 " keys in %.2f s, %" PRIu64 " errors\n", o->keys,
                r->prefill_s, (uint64_t)d->prefill_errors);
    uint64_t ops = driver_ops(d), errs = driver_errors(d);
    fprintf(f, "elapsed %.2f s: %" PRIu64 " ops, %.1f ops/s, %" PRIu64 " errors\n", r->elapsed_s,
            ops, r->elapsed_s > 0 ? (double)ops / r->elapsed_s : 0.0, errs);
    fprintf(f, "%-5s %10s %9s %7s %9s %8s %8s %8s %8s %8s %8s\n", "op", "ops/s", "ok", "errors",
            "notfound", "mismatch", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
    for (int k = 0; k < N_KINDS; k++) {
        if (o->mix[k])
            text_kind(f, op_kind_names[k], &d->stats[k], r->elapsed_s);
    }
    struct kind_stats all;
    if (merged(d, &all) == 0) {
        text_kind(f, "all", &all, r->elapsed_s);
        hist_free(&all.latency_us);
    }
    fprintf(f, "cpu: raft-bench %.2f cores; whole machine busy %.2f of %u cores\n", r->client_cores,
            r->machine_cores, r->machine_cpus);
    for (unsigned i = 0; i < d->errors.n; i++)
        fprintf(f, "error x%" PRIu64 ": %s\n", d->errors.msgs[i].count, d->errors.msgs[i].text);
    if (d->errors.others)
        fprintf(f, "error x%" PRIu64 ": (other messages)\n", d->errors.others);
    if (r->faulted)
        text_fault(f, r);
    if (r->verified)
        text_verify(f, d, r);
    fprintf(f, "reproduce: %s\n", r->command);
}

/* A JSON string; control characters and quotes escaped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_kind(FILE *f, const struct kind_stats *st, double secs)
{
    const struct histogram *h = &st->latency_us;
    uint64_t n = hist_count(h);
    fprintf(f,
            "{\"ops\":%" PRIu64 ",\"ops_per_s\":%.1f,\"errors\":%" PRIu64 ",\"not_found\":%" PRIu64
            ",\"cas_mismatch\":%" PRIu64 ",\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
            "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}",
            n, secs > 0 ? (double)n / secs : 0.0, (uint64_t)st->errors, (uint64_t)st->not_found,
            (uint64_t)st->mismatch, hist_mean(h) / 1000.0, ms(hist_quantile(h, 0.5)),
            ms(hist_quantile(h, 0.9)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
            ms(hist_max(h)));
}

static void json_verify(FILE *f, const struct driver *d, const struct run_summary *r)
{
    const _Atomic uint64_t *v = d->verdicts;
    fprintf(f,
            ",\"verify\":{\"ok\":%s,\"intact\":%" PRIu64 ",\"unknown_applied\":%" PRIu64
            ",\"absent\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"unexpected\":%" PRIu64
            ",\"unreadable\":%" PRIu64 ",\"unknown_writes\":%" PRIu64 "}",
            r->verify_ok ? "true" : "false", (uint64_t)v[LEDGER_INTACT],
            (uint64_t)v[LEDGER_UNKNOWN_APPLIED], (uint64_t)v[LEDGER_ABSENT],
            (uint64_t)v[LEDGER_LOST], (uint64_t)v[LEDGER_UNEXPECTED], (uint64_t)d->unverified,
            r->unknown_writes);
}

static void json_fault(FILE *f, const struct run_summary *r)
{
    fprintf(f,
            ",\"leader_fault\":{\"fault\":\"%s\",\"node\":%" PRIu64 ",\"at_s\":%.3f,"
            "\"recovered\":%s,\"unavailable_ms\":%.1f,\"gap_from_s\":%.3f,\"gap_to_s\":%.3f,"
            "\"fault_to_recovery_ms\":%.1f,\"gap_window_ms\":%u",
            leader_fault_names[r->fault], r->fault_node, r->fault_s,
            r->recovered ? "true" : "false", r->gap.ms, r->gap.from_s, r->gap.to_s, r->recovery_ms,
            DRIVER_FAULT_WINDOW_NS / 1000000u);
    fprintf(f,
            ",\"largest_gap_after\":{\"ms\":%.1f,\"from_s\":%.3f,\"to_s\":%.3f}"
            ",\"largest_gap_before\":{\"ms\":%.1f,\"from_s\":%.3f,\"to_s\":%.3f}",
            r->after.ms, r->after.from_s, r->after.to_s, r->before.ms, r->before.from_s,
            r->before.to_s);
    if (r->fault == FAULT_MOVE) {
        fprintf(f, ",\"move\":{\"status\":\"%s\",\"leader\":%" PRIu64 ",\"ms\":%.1f,\"error\":",
                raftkv_status_str(r->move_status), r->move_leader, r->move_ms);
        json_str(f, r->move_error);
        fprintf(f, "}");
    }
    fprintf(f, "}");
}

void report_json(FILE *f, const struct driver *d, const struct run_summary *r)
{
    const struct bench_options *o = d->o;
    char mix[96];
    options_mix(o, mix, sizeof mix);
    uint64_t ops = driver_ops(d);
    fprintf(f, "{\"command\":");
    json_str(f, r->command);
    fprintf(f, ",\"endpoints\":");
    json_str(f, r->endpoints);
    fprintf(f,
            ",\"nodes\":%d,\"mix\":\"%s\",\"clients\":%u,\"conns\":%u,\"keys\":%" PRIu64
            ",\"zipf\":%g,\"value_size\":%u,\"consistency\":\"linearizable\"",
            r->nodes, mix, o->clients, o->conns, o->keys, o->zipf, o->value_size);
    if (r->prefill_s >= 0)
        fprintf(f, ",\"prefill_s\":%.3f,\"prefill_errors\":%" PRIu64, r->prefill_s,
                (uint64_t)d->prefill_errors);
    fprintf(f, ",\"elapsed_s\":%.3f,\"ops\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f",
            r->elapsed_s, ops, driver_errors(d),
            r->elapsed_s > 0 ? (double)ops / r->elapsed_s : 0.0);
    fprintf(f, ",\"client_cpu_cores\":%.2f,\"machine_busy_cores\":%.2f", r->client_cores,
            r->machine_cores);
    fprintf(f, ",\"by_op\":{");
    const char *sep = "";
    for (int k = 0; k < N_KINDS; k++) {
        if (!o->mix[k])
            continue;
        fprintf(f, "%s\"%s\":", sep, op_kind_names[k]);
        json_kind(f, &d->stats[k], r->elapsed_s);
        sep = ",";
    }
    fprintf(f, "}");
    struct kind_stats all;
    if (merged(d, &all) == 0) {
        fprintf(f, ",\"all\":");
        json_kind(f, &all, r->elapsed_s);
        hist_free(&all.latency_us);
    }
    fprintf(f, ",\"error_messages\":[");
    for (unsigned i = 0; i < d->errors.n; i++) {
        fprintf(f, "%s{\"count\":%" PRIu64 ",\"message\":", i ? "," : "", d->errors.msgs[i].count);
        json_str(f, d->errors.msgs[i].text);
        fprintf(f, "}");
    }
    fprintf(f, "]");
    if (r->faulted)
        json_fault(f, r);
    if (r->verified)
        json_verify(f, d, r);
    fprintf(f, "}\n");
}
