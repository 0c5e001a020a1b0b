# The official nginx image with the MQTT preread module, built against that
# image's exact nginx version and configure arguments.
#
#   docker build --build-arg NGINX_VERSION=1.28.0 -t nginx-mqtt .
#   docker run -p 8883:8883 -v $PWD/certs:/etc/nginx/certs nginx-mqtt
#
# The build itself is scripts/build-module.sh, the script CI runs against
# Debian's nginx; this file only supplies the nginx binary and sources.

ARG NGINX_VERSION=1.28.0

FROM nginx:${NGINX_VERSION} AS official

FROM rust:1-bookworm AS builder
ARG NGINX_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev libpcre2-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
# The runtime image's binary: build-module.sh reads its `nginx -V`.
COPY --from=official /usr/sbin/nginx /opt/official/nginx
RUN curl -fsSL "https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz" | tar -xz -C /opt
WORKDIR /src
COPY . .
RUN scripts/build-module.sh --nginx /opt/official/nginx --source "/opt/nginx-${NGINX_VERSION}" --out /out

FROM nginx:${NGINX_VERSION}
COPY --from=builder /out/ngx_stream_mqtt_preread_module.so /usr/lib/nginx/modules/
COPY nginx-conf/ /etc/nginx/mqtt-examples/
# The official image loads the stream module dynamically: it comes first.
RUN { echo 'load_module modules/ngx_stream_module.so;'; \
      sed -e '/^# load_module modules\/ngx_stream_module.so;/d' \
          -e 's/127.0.0.1:8883/8883/' -e 's|logs/|/var/log/nginx/|' \
          /etc/nginx/mqtt-examples/iot-gateway.conf; } >/etc/nginx/nginx.conf
EXPOSE 8883
