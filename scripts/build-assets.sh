#!/bin/sh
# Copies the built State Design System (DSFR, from npm) and htmx into the portal's static
# directory.
# Runs `npm ci` first when node_modules is missing. The DSFR package asks for its terms of use
# to be accepted (.dsfr.yml at the project root, or DSFR_ACCEPT_LICENSE=1): that is the
# deployer's decision, so this script does not make it.
set -eu
cd "$(dirname "$0")/.."
SRC=node_modules/@gouvfr/dsfr/dist
DEST=src/guichet/portal/static/dsfr

if [ ! -d "$SRC" ]; then
    npm ci --no-audit --no-fund
fi

rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp/utility/icons"
cp "$SRC/dsfr.min.css" "$SRC/dsfr.module.min.js" "$SRC/dsfr.nomodule.min.js" "$DEST.tmp/"
cp "$SRC/utility/icons/icons.min.css" "$DEST.tmp/utility/icons/"
# The stylesheets reference these by relative path (fonts/, icons/, artwork/).
cp -R "$SRC/fonts" "$SRC/icons" "$SRC/favicon" "$SRC/artwork" "$DEST.tmp/"
cp node_modules/@gouvfr/dsfr/LICENSE.md "$DEST.tmp/"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "DSFR $(node -p "require('./node_modules/@gouvfr/dsfr/package.json').version") → $DEST"

# htmx, for the few partial updates of the portal (served from the portal, never a CDN).
HTMX=src/guichet/portal/static/htmx
rm -rf "$HTMX.tmp"
mkdir -p "$HTMX.tmp"
cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx.org/LICENSE "$HTMX.tmp/"
rm -rf "$HTMX"
mv "$HTMX.tmp" "$HTMX"
echo "htmx $(node -p "require('./node_modules/htmx.org/package.json').version") → $HTMX"
