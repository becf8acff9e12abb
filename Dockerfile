# Multi-stage build: a static binary on a distroless base, run as non-root.
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t alfresco-ssh .
#   docker run --rm -p 5000:5000 -e CREDENTIALS_KEY alfresco-ssh
# The Go version is the one go.mod requires, patch included, so that a cached
# older golang:1.26 image is never used (TestDocsGoVersion keeps them equal).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what --version reports; without it, the module's build
# information ("dev" in a build without VCS data).
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${VERSION:+-X main.version=$VERSION}" -o /out/alfresco-ssh .

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=
LABEL org.opencontainers.image.title=alfresco-ssh org.opencontainers.image.version=$VERSION
COPY --from=build /out/alfresco-ssh /alfresco-ssh
USER nonroot:nonroot
# All interfaces inside the container; publish the port to choose who reaches
# it. Defaults only: docker run -e ALFRESCO_SSH_PORT=8080 (or a flag) wins.
ENV ALFRESCO_SSH_HOST=localnetwork ALFRESCO_SSH_PORT=5000
EXPOSE 5000
ENTRYPOINT ["/alfresco-ssh"]
