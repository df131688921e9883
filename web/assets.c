/*
 * assets.c — the page's files, found by path. Their bytes are in the generated
 * web_assets.c (cmake/embed_assets.cmake writes it from web/assets/ at build time), so
 * that the binary serves exactly the files of its own build and needs no directory at
 * run time.
 */
#include <string.h>

#include "web.h"

extern const web_asset web_assets[];
extern const size_t web_assets_count;

const web_asset *web_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}
