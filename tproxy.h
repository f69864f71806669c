/*
 * tproxy.h - the one include of main: every module's header.  Each module
 * has a header of its own; the filter interface is tap.h.
 */
#ifndef TPROXY_H
#define TPROXY_H

#define TPROXY_VERSION	"0.2.0"

#include "accept.h"
#include "addr.h"
#include "ca.h"
#include "conn.h"
#include "control.h"
#include "event.h"
#include "filter.h"
#include "held.h"
#include "loop.h"
#include "net.h"
#include "opts.h"
#include "out.h"
#include "prompt.h"
#include "proxy.h"
#include "route.h"
#include "stream.h"
#include "tapset.h"
#include "tls.h"
#include "transparent.h"
#include "udp.h"

#endif /* TPROXY_H */
