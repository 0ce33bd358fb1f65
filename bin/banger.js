#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

void main(process.argv.slice(2));
