/* Marks raftkv's public API. The libraries are built with hidden visibility, so a shared
 * build exports only what is declared RAFTKV_API: internal functions can neither clash
 * with a program's own names nor become an interface someone depends on. */
#ifndef RAFTKV_API_H
#define RAFTKV_API_H

#if defined(__GNUC__) || defined(__clang__)
#define RAFTKV_API __attribute__((visibility("default")))
#else
#define RAFTKV_API
#endif

#endif
