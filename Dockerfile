# The official nginx image with the MQTT preread module, built against that
# image's exact nginx version and configure arguments.
#
#   docker build -t nginx-mqtt .
#   docker run -p 8883:8883 -v $PWD/certs:/etc/nginx/certs nginx-mqtt
#
# Another nginx release needs its version and the SHA-512 of its source
# tarball, as nginx publishes it (contrib/src/nginx/SHA512SUMS in
# https://github.com/nginx/pkg-oss):
#
#   docker build --build-arg NGINX_VERSION=1.28.1 --build-arg NGINX_SHA512=<sha512> .
#
# The build itself is scripts/build-module.sh --nginx BIN --source DIR, the
# command CI runs against Debian's nginx; this file only supplies the nginx
# binary and sources. Both images are Debian 12 (bookworm), so the module is
# linked against the glibc the runtime image has.

ARG NGINX_VERSION=1.28.0
ARG NGINX_SHA512=07d1ef078a73009c2aff0a5729a57f58f26512b71377715ef72cecdb249ef2ff69dd44df3d755a1de2a2721ee604e8a6cfac30a4cf8a45f0890b1746b68ee4d5

FROM nginx:${NGINX_VERSION}-bookworm AS official

# Rust 1.88: the oldest release the locked dependencies build with.
FROM rust:1.88.0-bookworm AS builder
ARG NGINX_VERSION
ARG NGINX_SHA512
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev libpcre2-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
# The runtime image's binary: build-module.sh reads its `nginx -V`.
COPY --from=official /usr/sbin/nginx /opt/official/nginx
RUN curl -fsSLo /tmp/nginx.tar.gz "https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz" \
 && echo "${NGINX_SHA512}  /tmp/nginx.tar.gz" | sha512sum -c - \
 && tar -xzf /tmp/nginx.tar.gz -C /opt \
 && rm /tmp/nginx.tar.gz
WORKDIR /src
COPY . .
RUN scripts/build-module.sh --nginx /opt/official/nginx --source "/opt/nginx-${NGINX_VERSION}" --out /out

FROM nginx:${NGINX_VERSION}-bookworm
COPY --from=builder /out/ngx_stream_mqtt_preread_module.so /usr/lib/nginx/modules/
COPY nginx-conf/ /etc/nginx/mqtt-examples/
# The official image loads the stream module dynamically: it comes first.
RUN { echo 'load_module modules/ngx_stream_module.so;'; \
      sed -e '/^# load_module modules\/ngx_stream_module.so;/d' \
          -e 's/127.0.0.1:8883/8883/' -e 's|logs/|/var/log/nginx/|' \
          /etc/nginx/mqtt-examples/iot-gateway.conf; } >/etc/nginx/nginx.conf
EXPOSE 8883
