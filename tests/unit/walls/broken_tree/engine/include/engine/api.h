// The public API exposing an internal header.
#pragma once
#include "low/low.h"
