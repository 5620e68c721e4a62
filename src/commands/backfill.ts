import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const backfillCommand: Command = {
  name: 'backfill',
  summary: 'backfill',
  usage: 'backfill',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'backfill' is not implemented yet");
  },
};
