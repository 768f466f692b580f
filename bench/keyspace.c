#include "keyspace.h"

#include <math.h>

uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * 0x1.0p-53;
}

/* log1p(x)/x and expm1(x)/x, continued to 1 at 0. */
static double log1p_div(double x)
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x / 2.0;
}

static double expm1_div(double x)
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x / 2.0;
}

/* The unnormalised density h(x) = x^-s, its integral H and H's inverse. */
static double zipf_h(double s, double x)
{
    return exp(-s * log(x));
}

static double zipf_hint(double s, double x)
{
    double lx = log(x);
    return expm1_div((1.0 - s) * lx) * lx;
}

static double zipf_hint_inv(double s, double x)
{
    double t = x * (1.0 - s);
    if (t < -1.0)
        t = -1.0;
    return exp(log1p_div(t) * x);
}

void keyspace_init(struct keyspace *k, uint64_t n, double s)
{
    k->n = n;
    k->s = s;
    if (s <= 0.0)
        return;
    k->h_x1 = zipf_hint(s, 1.5) - 1.0;
    k->h_n = zipf_hint(s, (double)n + 0.5);
    k->s_limit = 2.0 - zipf_hint_inv(s, zipf_hint(s, 2.5) - zipf_h(s, 2.0));
}

uint64_t keyspace_draw(const struct keyspace *k, uint64_t *rng)
{
    if (k->s <= 0.0)
        return rng_next(rng) % k->n;
    for (;;) {
        double u = k->h_n + rng_unit(rng) * (k->h_x1 - k->h_n);
        double x = zipf_hint_inv(k->s, u);
        double r = floor(x + 0.5);
        if (r < 1.0)
            r = 1.0;
        else if (r > (double)k->n)
            r = (double)k->n;
        if (r - x <= k->s_limit || u >= zipf_hint(k->s, r + 0.5) - zipf_h(k->s, r))
            return (uint64_t)r - 1;
    }
}
