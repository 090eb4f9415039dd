// Module high declares low but never includes it.
#pragma once
