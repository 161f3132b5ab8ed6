# printfarm: web server image. Run the poller from the same image:
#   docker run ... printfarm python manage.py poll_printers
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
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py serve --host 0.0.0.0 --port 8000"]
