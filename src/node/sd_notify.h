/*
 * systemd's readiness protocol (sd_notify(3)), without libsystemd: a service of Type=notify
 * sends "READY=1" once it serves and "STOPPING=1" when it begins to stop, each as one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name
 * written with a leading '@'). Without $NOTIFY_SOCKET (not started by systemd) nothing is
 * sent.
 */
#ifndef RAFTKV_NODE_SD_NOTIFY_H
#define RAFTKV_NODE_SD_NOTIFY_H

enum rk_sd_notify_err {
    RK_SD_NOTIFY_OK = 0,   /* sent, or $NOTIFY_SOCKET unset or empty: nothing to send */
    RK_SD_NOTIFY_EADDRESS, /* $NOTIFY_SOCKET is neither an absolute path nor '@' + name, or is
                            * too long for a sockaddr_un */
    RK_SD_NOTIFY_ESEND,    /* the socket could not be made, or the datagram not sent */
};

/* Sends state (e.g. "READY=1") to $NOTIFY_SOCKET. Returns 0 or an rk_sd_notify_err; errno
 * says why a send failed. */
int rk_sd_notify(const char *state);

#endif
