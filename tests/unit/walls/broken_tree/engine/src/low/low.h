// Module low: includes the module above it, which it does not (and may not) declare.
#pragma once
#include "high/high.h"
