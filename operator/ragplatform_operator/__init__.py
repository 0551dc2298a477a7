"""The RagPlatform operator: one `RagPlatform` resource becomes the whole platform in a namespace.

`spec` is the typed, validated view of a RagPlatform's spec; `builders` turns it into child
manifests with pure functions. The operator never imports the services package (`ragplatform`):
the contract between them is the env-var names and the command line, nothing else.
"""

API_GROUP = "ragplatform.io"
API_VERSION = "v1alpha1"
KIND = "RagPlatform"
PLURAL = "ragplatforms"
