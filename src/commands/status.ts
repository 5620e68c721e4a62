import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'status',
  usage: 'status',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'status' is not implemented yet");
  },
};
