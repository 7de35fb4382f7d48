#!/bin/sh
# docker-compose one-shot step: build a dev federation (SYNTHETIC) on the shared volume the first
# time, then provision RabbitMQ for it (idempotent: a second run reports no changes).
#   FEDERATION_DIR       the shared volume (default /federation)
#   POLICIES_DIR         the federation's ISAs (default /opt/isa-relay/policies, from the image)
#   RABBITMQ_HOST        the broker's host name on the compose network (default rabbitmq)
#   RABBITMQ_ADMIN_USER / RABBITMQ_ADMIN_PASSWORD   the broker's administrator (dev only)
# Every agent listens on 0.0.0.0:8441 inside its own container; compose maps it to the host.
set -eu

FED=${FEDERATION_DIR:-/federation}
POLICIES=${POLICIES_DIR:-/opt/isa-relay/policies}
HOST=${RABBITMQ_HOST:-rabbitmq}
ADMIN=${RABBITMQ_ADMIN_USER:?set RABBITMQ_ADMIN_USER}
export ISA_BROKER_ADMIN_PASSWORD="${RABBITMQ_ADMIN_PASSWORD:?set RABBITMQ_ADMIN_PASSWORD}"

if [ ! -f "$FED/manifest.json" ]; then
  echo "building the dev federation in $FED"
  isa-broker dev-federation --out "$FED" --policies "$POLICIES" \
    --amqp-url "amqp://$HOST:5672/" --management-url "http://$HOST:15672" \
    --vhost isa-relay --admin-user "$ADMIN" --admin-password "" --manifest-days 30
  for config in "$FED"/agencies/*/agent.toml; do
    sed -i 's/^listen = "127\.0\.0\.1:[0-9]*"$/listen = "0.0.0.0:8441"/' "$config"
  done
fi

# The management API can answer a moment after RabbitMQ reports healthy: retry for a minute.
tries=0
until isa-broker provision --config "$FED/broker.toml"; do
  tries=$((tries + 1))
  [ "$tries" -lt 12 ] || { echo "provisioning failed" >&2; exit 1; }
  sleep 5
done
