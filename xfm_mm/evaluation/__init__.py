# Copyright (c) xfm_mm contributors. All rights reserved.
