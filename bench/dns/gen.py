#!/usr/bin/env python3
"""Data of the cluster DNS benchmark (bench/dns/cluster.sh).

The synthetic cluster is the one `dns_cluster_bench load` writes through the
API: Service svc-N in namespace ns(N % 100), ClusterIP 10.100.0.0 + N (every
HEADLESS_EVERY-th Service headless), ENDPOINTS endpoints each at
10.128.0.0 + N * ENDPOINTS + J, a headless Service's endpoints named svc-N-J.

  gen.py queries SERVICES ENDPOINTS HEADLESS_EVERY   dnsperf input (100,000 lines)
  gen.py zones DIR SERVICES ENDPOINTS HEADLESS_EVERY  the same names as zone files
                                                      (cluster.local, 10.in-addr.arpa)
"""
import ipaddress
import os
import random
import sys

NAMESPACES = 100
QUERIES = 100_000


def ip(base, offset):
    return str(ipaddress.IPv4Address(base) + offset)


def service_ip(n):
    return ip("10.100.0.0", n)


def endpoint_ip(n, j, endpoints):
    return ip("10.128.0.0", n * endpoints + j)


def reverse(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa"


def queries(services, endpoints, every):
    """The query mix of a pod with ndots:5 looking up in-cluster names."""
    rnd = random.Random(1)
    headless = [n for n in range(services) if every and n % every == 0]
    for _ in range(QUERIES):
        n = rnd.randrange(services)
        ns = f"ns{n % NAMESPACES}"
        name = f"svc-{n}.{ns}.svc.cluster.local"
        r = rnd.random()
        if r < 0.60:  # A of a Service (a tenth of them headless: 10 addresses)
            print(f"{name} A")
        elif r < 0.65:  # A of a headless Service's pod hostname
            h = rnd.choice(headless)
            j = rnd.randrange(endpoints)
            print(f"svc-{h}-{j}.svc-{h}.ns{h % NAMESPACES}.svc.cluster.local A")
        elif r < 0.75:  # ndots:5 search-path expansion of a full name: NXDOMAIN
            print(f"{name}.{ns}.svc.cluster.local A")
        elif r < 0.85:  # SRV of the named port
            print(f"_http._tcp.{name} SRV")
        elif r < 0.90:  # PTR of a ClusterIP or of a headless endpoint
            if n in headless or not headless:
                h = rnd.choice(headless) if headless else n
                print(f"{reverse(endpoint_ip(h, rnd.randrange(endpoints), endpoints))} PTR")
            else:
                print(f"{reverse(service_ip(n))} PTR")
        else:  # AAAA of an IPv4-only Service: NODATA
            print(f"{name} AAAA")


def zones(out, services, endpoints, every):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cluster.local.zone"), "w") as z, open(
        os.path.join(out, "10.in-addr.arpa.zone"), "w"
    ) as r:
        soa = "@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n"
        z.write("$ORIGIN cluster.local.\n$TTL 5\n" + soa)
        z.write("@ NS ns.dns.cluster.local.\nns.dns A 10.96.0.10\n")
        z.write('dns-version TXT "1.1.0"\n')
        r.write("$ORIGIN 10.in-addr.arpa.\n$TTL 5\n" + soa + "@ NS ns.dns.cluster.local.\n")
        for n in range(services):
            ns = f"ns{n % NAMESPACES}"
            svc = f"svc-{n}.{ns}.svc"
            fq = f"{svc}.cluster.local."
            if every and n % every == 0:
                weight = max(1, 100 // endpoints)
                for j in range(endpoints):
                    addr = endpoint_ip(n, j, endpoints)
                    host = f"svc-{n}-{j}"
                    z.write(f"{svc} A {addr}\n{host}.{svc} A {addr}\n")
                    z.write(f"_http._tcp.{svc} SRV 0 {weight} 8080 {host}.{fq}\n")
                    r.write(f"{reverse(addr)}. PTR {host}.{fq}\n")
            else:
                addr = service_ip(n)
                z.write(f"{svc} A {addr}\n_http._tcp.{svc} SRV 0 100 80 {fq}\n")
                r.write(f"{reverse(addr)}. PTR {fq}\n")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "queries":
        queries(*map(int, args))
    elif mode == "zones":
        zones(args[0], *map(int, args[1:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
