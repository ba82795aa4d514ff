"""Make the Ed25519 JWT key pair once: jwt_private.pem (auth only) and jwt_public.pem (every service).

    python generate.py DIR [UID]

Runs inside the auth image for docker-compose.yml (and by hand for a Kubernetes Secret); an existing
pair is kept. With UID, the files are handed to that user (the services' non-root user).
"""

import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

folder = Path(sys.argv[1])
private, public = folder / "jwt_private.pem", folder / "jwt_public.pem"
if private.exists() and public.exists():
    print(f"==> JWT key pair already in {folder}")
    raise SystemExit(0)
folder.mkdir(parents=True, exist_ok=True)
key = Ed25519PrivateKey.generate()
private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
private.chmod(0o600)
public.chmod(0o644)
if len(sys.argv) > 2:
    for path in (private, public):
        os.chown(path, int(sys.argv[2]), int(sys.argv[2]))
print(f"==> generated the JWT key pair (Ed25519) in {folder}")
