# bulk: the CLI and the callback receiver in one image (docs/deploy.md).
#   docker build -t bulk .
#   docker run --rm bulk --help
#   docker run --rm -v bulk-data:/var/lib/bulk bulk callback serve --keys /var/lib/bulk/keys ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BULK_STATE_DIR=/var/lib/bulk/state

# The pinned, hashed dependencies first (a layer that changes only with the lock), then bulk itself without them.
COPY requirements.lock /tmp/bulk/requirements.lock
RUN python -m pip install --require-hashes -r /tmp/bulk/requirements.lock
COPY pyproject.toml README.md /tmp/bulk/
COPY bulk /tmp/bulk/bulk
RUN python -m pip install --no-deps /tmp/bulk && rm -rf /tmp/bulk

# Never root: keys files, checkpoints and backups belong to this user (uid 10001), in its home, mode 0700.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/bulk --create-home --shell /usr/sbin/nologin bulk \
    && chmod 0700 /var/lib/bulk
USER bulk:bulk
WORKDIR /var/lib/bulk
VOLUME ["/var/lib/bulk"]

# The receiver's callback port and its admin listener (/metrics, /readyz); the simulator's port for rehearsals.
EXPOSE 8080 8081 8787
ENTRYPOINT ["bulk"]
CMD ["--help"]
