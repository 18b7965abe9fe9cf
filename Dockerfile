# One image for web, CPU worker and GPU judge worker. Build the GPU variant with
#   docker build --build-arg EXTRAS=judge -t spavl-web:judge .
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SPAVL_PRODUCTION=1 SPAVL_VAR_DIR=/var/lib/spavl
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY spavl_web ./spavl_web
COPY annotation ./annotation
COPY judging ./judging
COPY templates ./templates
COPY static ./static
COPY manage.py ./
# The compose volumes mount under /var/lib/spavl: a new named volume takes its folder's owner.
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --home /var/lib/spavl spavl \
    && mkdir -p /var/lib/spavl/exports /var/lib/spavl/hf /var/lib/spavl/imports/data \
       /var/lib/spavl/imports/uploads /var/lib/spavl/imports/reports \
    && chown -R spavl /var/lib/spavl
# collectstatic needs settings, not secrets: a throwaway key just for this step.
RUN SECRET_KEY=build-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=') \
    ALLOWED_HOSTS=build python manage.py collectstatic --no-input
USER spavl
EXPOSE 8000
# gthread: a long export download occupies one thread, never a whole worker or its timeout.
CMD ["gunicorn", "spavl_web.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--timeout", "60"]
