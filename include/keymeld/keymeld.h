/* keymeld/keymeld.h — umbrella header for libkeymeld. */
#ifndef KEYMELD_KEYMELD_H
#define KEYMELD_KEYMELD_H
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/channel.h"
#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/ecies.h"
#include "keymeld/error.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/protocol.h"
#include "keymeld/reqauth.h"
#include "keymeld/seal.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"
#include "keymeld/single.h"
#include "keymeld/taproot.h"
#include "keymeld/tx.h"
#include "keymeld/uuid.h"
#endif
