# printfarm: one image for the web server and the poller (compose.yaml runs both on one /data
# volume). docker/entrypoint.sh makes the secret key, migrates and creates the first admin.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PRINTFARM_DATA_DIR=/data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /app printfarm && mkdir -p /data && chown printfarm /data
USER printfarm
VOLUME /data
EXPOSE 8000
# The web role's check (compose.yaml turns it off for the poller, which serves no port).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "/app/docker/healthcheck.py"]
# Through sh: the script runs even from a checkout that lost its executable bit.
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["web"]
