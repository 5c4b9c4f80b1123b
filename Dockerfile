# The image the Kubernetes CronJob recipe in docs/gitops.md runs: batchrun installed once,
# when the image is built, instead of `pip install` at every scheduled pass.
#   docker build -t registry.example.com/batchrun:0.1.0 .
#   docker run --rm registry.example.com/batchrun:0.1.0 --version
FROM python:3.12-slim

# What the wheel needs, nothing else (tests, docs and benchmarks stay out: .dockerignore).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY schemas ./schemas
RUN pip install --no-cache-dir . && rm -rf /src

# Not root: a pass only reads the job folder and writes the state and result volumes.
RUN useradd --create-home --uid 10001 batchrun
USER 10001
WORKDIR /jobs
ENTRYPOINT ["batchrun"]
CMD ["--help"]
