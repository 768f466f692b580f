#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "node/sd_notify.h"

int rk_sd_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return RK_SD_NOTIFY_OK;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof sa.sun_path)
        return RK_SD_NOTIFY_EADDRESS;
    memcpy(sa.sun_path, name, len);
    /* An abstract name has no terminating NUL: its length is part of the name. */
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        sa_len++;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return RK_SD_NOTIFY_ESEND;
    size_t n = strlen(state);
    ssize_t sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent == (ssize_t)n ? RK_SD_NOTIFY_OK : RK_SD_NOTIFY_ESEND;
}
