#include "cli/version.h"

/* In the build tree, from git_revision.cmake. */
#include "raftkv_git_revision.h"

#if RAFTKV_GIT_MODIFIED
#define RK_GIT_MODIFIED ", modified"
#else
#define RK_GIT_MODIFIED ""
#endif

const char *rk_version(void)
{
    return RAFTKV_VERSION " (git " RAFTKV_GIT_REVISION RK_GIT_MODIFIED ")";
}
