/* keymeld/keymeld.h — umbrella header for libkeymeld. */
#ifndef KEYMELD_KEYMELD_H
#define KEYMELD_KEYMELD_H
#include "keymeld/aead.h"
#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"
#include "keymeld/uuid.h"
#endif
