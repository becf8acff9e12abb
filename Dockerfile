# Multi-stage build: a static binary on a distroless base, run as non-root.
#   docker build -t alfresco-ssh .
#   docker run --rm -p 5000:5000 alfresco-ssh
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/alfresco-ssh .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/alfresco-ssh /alfresco-ssh
USER nonroot:nonroot
EXPOSE 5000
# All interfaces inside the container; publish the port to choose who reaches it.
ENTRYPOINT ["/alfresco-ssh", "--host", "localnetwork", "--port", "5000"]
